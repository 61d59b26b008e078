// The official `openai` npm package against a running Homeport (HOMEPORT_BASE_URL, HOMEPORT_API_KEY),
// started by tests/node/test_node_sdk.py on the default models. Node's own test runner.
import assert from "node:assert/strict";
import { test } from "node:test";

import OpenAI, { toFile } from "openai";
import { zodResponseFormat } from "openai/helpers/zod";
import { z } from "zod";

const client = new OpenAI({ baseURL: process.env.HOMEPORT_BASE_URL, apiKey: process.env.HOMEPORT_API_KEY, maxRetries: 0, timeout: 120_000 });
const CHAT = "smollm2-135m-instruct";
const hi = [{ role: "user", content: "Name three colors." }];

test("chat: a completion with usage", async () => {
  const out = await client.chat.completions.create({ model: CHAT, messages: hi, max_tokens: 16 });
  assert.equal(out.object, "chat.completion");
  assert.equal(out.model, CHAT);
  assert.ok(out.choices[0].message.content.length > 0);
  assert.equal(out.usage.total_tokens, out.usage.prompt_tokens + out.usage.completion_tokens);
});

test("chat: OpenAI's model names run unchanged", async () => {
  const out = await client.chat.completions.create({ model: "gpt-4o-mini", messages: hi, max_tokens: 4 });
  assert.equal(out.model, CHAT);
});

test("chat: streaming with stream_options.include_usage", async () => {
  const stream = await client.chat.completions.create({ model: CHAT, messages: hi, max_tokens: 16, stream: true,
                                                        stream_options: { include_usage: true } });
  let text = "";
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    if (chunk.choices.length) text += chunk.choices[0].delta.content ?? "";
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(chunks > 2 && text.length > 0);
  assert.ok(usage && usage.completion_tokens > 0);
});

test("chat: the stream helper gives the final completion", async () => {
  const runner = client.chat.completions.stream({ model: CHAT, messages: hi, max_tokens: 12 });
  const final = await runner.finalChatCompletion();
  assert.ok(final.choices[0].message.content.length > 0);
});

test("tools: a required call with valid arguments", async () => {
  const tools = [{ type: "function", function: { name: "get_weather", parameters: {
    type: "object", properties: { city: { type: "string", maxLength: 20 } }, required: ["city"], additionalProperties: false } } }];
  const out = await client.chat.completions.create({ model: CHAT, max_tokens: 64, tools, tool_choice: "required",
    messages: [{ role: "user", content: "What is the weather in Paris?" }] });
  const [call] = out.choices[0].message.tool_calls;
  assert.equal(out.choices[0].finish_reason, "tool_calls");
  assert.equal(call.function.name, "get_weather");
  assert.equal(typeof JSON.parse(call.function.arguments).city, "string");
});

test("structured outputs: zodResponseFormat parses into the schema", async () => {
  const Color = z.object({ name: z.string().max(20), hex: z.enum(["#ff0000", "#00ff00", "#0000ff"]) });
  const out = await client.chat.completions.parse({ model: CHAT, max_tokens: 60, temperature: 1,
    messages: [{ role: "user", content: "Pick a color." }], response_format: zodResponseFormat(Color, "color") });
  const parsed = out.choices[0].message.parsed;
  assert.ok(parsed && typeof parsed.name === "string");
  assert.ok(["#ff0000", "#00ff00", "#0000ff"].includes(parsed.hex));
});

test("embeddings: floats and base64 decode alike", async () => {
  const floats = await client.embeddings.create({ model: "text-embedding-3-small", input: ["first", "second"], encoding_format: "float" });
  assert.equal(floats.data.length, 2);
  assert.equal(floats.data[0].embedding.length, 384);
  const decoded = await client.embeddings.create({ model: "all-minilm-l6-v2", input: "first" }); // the SDK asks base64, decodes
  assert.ok(Math.abs(decoded.data[0].embedding[0] - floats.data[0].embedding[0]) < 1e-6);
});

test("files and a vector store search", async () => {
  const file = await client.files.create({ purpose: "assistants", file: await toFile(
    Buffer.from("The bowline makes a fixed loop at the end of a line. Sailors trust it to moor a boat."), "knots.txt") });
  assert.equal(file.filename, "knots.txt");
  let store = await client.vectorStores.create({ name: "knots", file_ids: [file.id] });
  const deadline = Date.now() + 120_000; // ingestion runs as a job: wait for it, generously
  while (store.file_counts.in_progress > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    store = await client.vectorStores.retrieve(store.id);
  }
  assert.equal(store.file_counts.completed, 1);
  const page = await client.vectorStores.search(store.id, { query: "which knot makes a loop?" });
  const results = [];
  for await (const result of page) results.push(result);
  assert.equal(results[0].file_id, file.id);
  assert.ok(results[0].score > 0 && results[0].content[0].text.includes("bowline"));
  await client.vectorStores.delete(store.id);
  const deleted = await client.files.delete(file.id);
  assert.equal(deleted.deleted, true);
});

test("responses: plain, streamed, and continued with previous_response_id", async () => {
  const first = await client.responses.create({ model: CHAT, input: "My name is Ada. Say hello.", max_output_tokens: 24 });
  assert.equal(first.object, "response");
  assert.ok(first.output_text.length > 0);
  const stream = await client.responses.create({ model: CHAT, input: "What is my name?", max_output_tokens: 24,
                                                 previous_response_id: first.id, stream: true });
  const types = [];
  let completed = null;
  for await (const event of stream) {
    types.push(event.type);
    if (event.type === "response.completed" || event.type === "response.incomplete") completed = event.response;
  }
  assert.equal(types[0], "response.created");
  assert.ok(types.includes("response.output_text.delta"));
  assert.ok(["response.completed", "response.incomplete"].includes(types.at(-1))); // incomplete: max_output_tokens
  assert.equal(completed.previous_response_id, first.id);
  const items = await client.responses.inputItems.list(completed.id);
  assert.ok(items.data.length >= 1);
});

test("errors map to the SDK's error classes", async () => {
  await assert.rejects(client.chat.completions.create({ model: "no-such-model", messages: hi }),
    (err) => err instanceof OpenAI.NotFoundError && err.status === 404 && err.code === "model_not_found");
  await assert.rejects(client.chat.completions.create({ model: CHAT, messages: hi, temperature: 7 }),
    (err) => err instanceof OpenAI.BadRequestError && err.param === "temperature");
  const stranger = new OpenAI({ baseURL: process.env.HOMEPORT_BASE_URL, apiKey: "sk-hp-not-a-key", maxRetries: 0 });
  await assert.rejects(stranger.models.list(), (err) => err instanceof OpenAI.AuthenticationError && err.status === 401);
  await assert.rejects(client.files.retrieve("file-nope"), (err) => err instanceof OpenAI.NotFoundError);
});

test("models: list and retrieve", async () => {
  const ids = [];
  for await (const model of client.models.list()) ids.push(model.id);
  assert.ok(ids.includes(CHAT) && ids.includes("gpt-4o-mini"));
  assert.equal((await client.models.retrieve(CHAT)).id, CHAT);
});
