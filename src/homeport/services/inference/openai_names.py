"""OpenAI's model names, so code written for api.openai.com runs unchanged: each name resolves to
the first served model of its kind (`openai_aliases`, on by default; names the configuration
already uses stay its own). The chat names are the current and common ones of the spec's
`ModelIdsShared` and `ModelIdsResponses`, snapshots included."""

from __future__ import annotations

__all__ = ["OPENAI_NAMES"]

_CHAT = (
    "gpt-5.5", "gpt-5.5-pro", "gpt-5.4", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.2", "gpt-5.2-pro", "gpt-5.1",
    "gpt-5.1-mini", "gpt-5.1-chat-latest", "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5-chat-latest", "gpt-5-pro",
    "gpt-5-2025-08-07", "gpt-5-mini-2025-08-07", "gpt-5-nano-2025-08-07",
    "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano-2025-04-14",
    "o4-mini", "o3", "o3-mini", "o3-pro", "o1", "o1-mini", "o1-pro",
    "gpt-4o", "gpt-4o-2024-11-20", "gpt-4o-2024-08-06", "gpt-4o-2024-05-13", "chatgpt-4o-latest",
    "gpt-4o-mini", "gpt-4o-mini-2024-07-18",
    "gpt-4-turbo", "gpt-4-turbo-2024-04-09", "gpt-4-turbo-preview", "gpt-4", "gpt-4-0613", "gpt-4-32k",
    "gpt-3.5-turbo", "gpt-3.5-turbo-0125", "gpt-3.5-turbo-1106", "gpt-3.5-turbo-16k", "gpt-3.5-turbo-instruct",
)  # fmt: skip

OPENAI_NAMES: dict[str, tuple[str, ...]] = {
    "chat": _CHAT,
    "embedding": ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"),
    "transcription": ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"),
    "speech": ("tts-1", "tts-1-hd", "gpt-4o-mini-tts"),
    "moderation": ("omni-moderation-latest", "omni-moderation-2024-09-26", "text-moderation-latest",
                   "text-moderation-stable"),  # fmt: skip
}
"""Per model kind (settings.ModelConfig.kind), the OpenAI names it answers to."""
