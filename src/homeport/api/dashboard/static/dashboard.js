// Homeport dashboard: copy buttons, confirmations, and the playground. No framework, nothing fetched
// from elsewhere; every page works without this file except the playground.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const field = document.querySelector(button.dataset.copy);
  field.select();
  const done = () => { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(field.value).then(done, () => { document.execCommand("copy"); done(); });
  else { document.execCommand("copy"); done(); }
});

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form.confirm");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// ---------------------------------------------------------------- playground

function pyLiteral(value, indent) {
  const pad = "    ".repeat(indent + 1), end = "    ".repeat(indent);
  if (value === null) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return "[\n" + value.map((v) => pad + pyLiteral(v, indent + 1)).join(",\n") + ",\n" + end + "]";
  }
  if (typeof value === "object") {
    const keys = Object.keys(value);
    if (!keys.length) return "{}";
    return "{\n" + keys.map((k) => pad + JSON.stringify(k) + ": " + pyLiteral(value[k], indent + 1)).join(",\n") + ",\n" + end + "}";
  }
  return JSON.stringify(value);
}

function pythonCode(request) {
  const args = Object.entries(request).map(([k, v]) => `    ${k}=${pyLiteral(v, 1)},`).join("\n");
  const base = `${location.origin}/v1`;
  const read = request.stream
    ? "for chunk in completion:\n    if chunk.choices and chunk.choices[0].delta.content:\n        print(chunk.choices[0].delta.content, end=\"\")"
    : "print(completion.choices[0].message.content)";
  return `from openai import OpenAI\n\nclient = OpenAI(base_url="${base}", api_key="YOUR_HOMEPORT_API_KEY")\n\ncompletion = client.chat.completions.create(\n${args}\n)\n${read}\n`;
}

function curlCode(request) {
  const body = JSON.stringify(request, null, 2).replace(/'/g, "'\\''");
  return `curl ${location.origin}/v1/chat/completions${request.stream ? " -N" : ""} \\\n  -H "Authorization: Bearer $HOMEPORT_API_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d '${body}'`;
}

function setupPlayground(form) {
  const history = [];
  const list = form.querySelector("#messages"), status = form.querySelector("#status");
  const send = form.querySelector("#send"), stop = form.querySelector("#stop");
  let controller = null, lastRequest = null;

  const field = (name) => form.elements[name];
  const bubble = (role, text) => {
    const item = document.createElement("li");
    item.className = `message ${role}`;
    const who = document.createElement("strong");
    who.textContent = role;
    const body = document.createElement("div");
    body.className = "content";
    body.textContent = text;
    item.append(who, body);
    list.append(item);
    return body;
  };

  function request() {
    const messages = [];
    const system = field("system").value.trim();
    if (system) messages.push({ role: "system", content: system });
    messages.push(...history);
    const body = { model: field("model").value, messages, temperature: Number(field("temperature").value),
                   top_p: Number(field("top_p").value), max_tokens: Number(field("max_tokens").value) };
    if (field("stream").checked) { body.stream = true; body.stream_options = { include_usage: true }; }
    const schema = field("schema").value.trim();
    if (schema) body.response_format = { type: "json_schema", json_schema: { name: "playground", strict: true, schema: JSON.parse(schema) } };
    const tools = field("tools").value.trim();
    if (tools) body.tools = JSON.parse(tools);
    return body;
  }

  function showCode(body) {
    form.querySelector("#code-python").textContent = pythonCode(body);
    form.querySelector("#code-curl").textContent = curlCode(body);
  }

  form.querySelector("#view-code").addEventListener("click", (event) => {
    const code = form.querySelector("#code");
    // The request the message box would send; with an empty box, the last one sent.
    const typed = field("prompt").value.trim();
    if (typed || !lastRequest) {
      try { history.push({ role: "user", content: typed || "Hello!" }); showCode(request()); }
      catch (err) { status.textContent = `Not valid JSON: ${err.message}`; }
      finally { history.pop(); }
    } else showCode(lastRequest);
    code.hidden = !code.hidden;
    event.target.setAttribute("aria-expanded", String(!code.hidden));
  });
  form.querySelector("#clear").addEventListener("click", () => { history.length = 0; list.replaceChildren(); status.textContent = ""; });
  stop.addEventListener("click", () => controller?.abort());

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const prompt = field("prompt").value.trim();
    if (!prompt) return;
    history.push({ role: "user", content: prompt });
    let body;
    try { body = request(); } catch (err) { history.pop(); status.textContent = `Not valid JSON: ${err.message}`; return; }
    showCode(body);
    lastRequest = body;
    bubble("user", prompt);
    field("prompt").value = "";
    const out = bubble("assistant", "");
    out.setAttribute("aria-busy", "true");
    controller = new AbortController();
    send.disabled = true; stop.disabled = false; status.textContent = "Waiting for the model…";
    const started = performance.now();
    const project = field("project") ? `?project=${encodeURIComponent(field("project").value)}` : "";
    try {
      const response = await fetch(form.dataset.endpoint + project, {
        method: "POST", body: JSON.stringify(body), signal: controller.signal,
        headers: { "content-type": "application/json", "x-csrf-token": csrf() },
      });
      if (!response.ok) {
        const err = await response.json().catch(() => ({}));
        throw new Error(err.error?.message || `HTTP ${response.status}`);
      }
      const reply = body.stream ? await readStream(response, out, started) : await readJson(response, out);
      history.push(reply.message);
      status.textContent = describe(reply, started);
    } catch (err) {
      history.pop();
      out.textContent = out.textContent || "";
      status.textContent = err.name === "AbortError" ? "Stopped." : `Error: ${err.message}`;
      out.closest("li").classList.add("error");
    } finally {
      out.removeAttribute("aria-busy");
      send.disabled = false; stop.disabled = true; controller = null;
    }
  });

  function describe(reply, started) {
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    const usage = reply.usage ? ` · ${reply.usage.prompt_tokens} in, ${reply.usage.completion_tokens} out` : "";
    const ttft = reply.ttft ? ` · first token ${reply.ttft.toFixed(0)} ms` : "";
    return `Done in ${seconds} s${ttft}${usage} · finish_reason ${reply.finish}`;
  }

  function toolText(calls) {
    return calls.map((c) => `→ ${c.function.name}(${c.function.arguments})`).join("\n");
  }

  async function readJson(response, out) {
    const data = await response.json();
    const message = data.choices[0].message;
    out.textContent = message.content || toolText(message.tool_calls || []);
    return { message: { role: "assistant", content: message.content, ...(message.tool_calls ? { tool_calls: message.tool_calls } : {}) },
             usage: data.usage, finish: data.choices[0].finish_reason };
  }

  async function readStream(response, out, started) {
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "", content = "", usage = null, finish = null, ttft = null;
    const calls = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = event.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (!data || data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.usage) usage = chunk.usage;
        const choice = chunk.choices?.[0];
        if (!choice) continue;
        if (choice.delta?.content) {
          ttft = ttft ?? performance.now() - started;
          content += choice.delta.content;
          out.textContent = content;
        }
        for (const call of choice.delta?.tool_calls || []) {
          calls[call.index] = calls[call.index] || { id: call.id, type: "function", function: { name: "", arguments: "" } };
          if (call.function?.name) calls[call.index].function.name += call.function.name;
          if (call.function?.arguments) calls[call.index].function.arguments += call.function.arguments;
          out.textContent = toolText(calls);
        }
        finish = choice.finish_reason || finish;
      }
    }
    const message = { role: "assistant", content: content || null, ...(calls.length ? { tool_calls: calls } : {}) };
    return { message, usage, finish, ttft };
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("#playground");
  if (form) setupPlayground(form);
});
