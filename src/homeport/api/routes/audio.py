"""/v1/audio/transcriptions, /v1/audio/translations and /v1/audio/speech.

Audio calls go through the platform like every model call: the key's `audio` scope and model
allow-list, its budgets and rate limits (counting seconds of audio, or characters of speech, as
tokens), the usage record (`/v1/organization/usage/audio_transcriptions` and `audio_speeches`)
and the engines' bounded queues (503 + Retry-After).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from ...errors import HomeportError, InvalidRequest, RequestTooLarge, invalid_body
from ...protocol.audio import MAX_AUDIO_BYTES, SpeechRequest, TranscriptionForm
from ...services.platform.admission import Admission
from ...services.platform.keys import ApiKey
from ...services.platform.usage import UsageEvent
from ..body import parse_body
from ..deps import CurrentKey
from ..drain import ClientLeft
from ..model_call import answering, may_call
from ..sse import named_event_stream

router = APIRouter()

_LISTS = {"timestamp_granularities", "include"}


@router.post("/v1/audio/transcriptions", response_model=None)
async def create_transcription(request: Request, key: CurrentKey) -> Response:
    return await _recognise(request, key, "transcribe")


@router.post("/v1/audio/translations", response_model=None)
async def create_translation(request: Request, key: CurrentKey) -> Response:
    return await _recognise(request, key, "translate")


@router.post("/v1/audio/speech", response_model=None)
async def create_speech(request: Request, key: CurrentKey) -> Response:
    body = await parse_body(request, SpeechRequest)
    service = request.app.state.speech
    started, model_id = time.perf_counter(), _model_id(request, key, body.model)
    plan = service.plan(body.model_copy(update={"model": model_id}))
    admission = await _admit(request, key, model_id, plan.characters)
    chunks = service.events(plan) if body.stream_format == "sse" else service.audio(plan)
    try:
        first = await anext(chunks)  # a failure before any audio is still an HTTP error
    except BaseException as exc:
        await _done(request, key, model_id, "audio_speeches", admission, 0, _status(exc), started)
        raise

    async def rest() -> AsyncIterator[Any]:
        status = 499
        try:
            yield first
            async for chunk in chunks:
                yield chunk
            status = 200
        finally:
            await _done(request, key, model_id, "audio_speeches", admission, plan.characters if status == 200 else 0,
                        status, started)  # fmt: skip

    if body.stream_format == "sse":
        return named_event_stream((event["type"], event) async for event in rest())
    return StreamingResponse(rest(), media_type=plan.media_type, headers=admission.headers)


async def _recognise(request: Request, key: ApiKey, task: str) -> Response:
    form, data = await _transcription_form(request)
    service = request.app.state.transcriptions
    started, model_id = time.perf_counter(), _model_id(request, key, form.model)
    plan = await service.plan(form.model_copy(update={"model": model_id}), data, task)
    admission = await _admit(request, key, model_id, plan.seconds)
    if form.stream:
        events = service.stream(plan)

        async def metered() -> AsyncIterator[tuple[str, Any]]:
            status = 499
            try:
                async for event in events:
                    yield event["type"], event
                status = 200
            finally:
                await _done(request, key, model_id, "audio_transcriptions", admission,
                            plan.seconds if status == 200 else 0, status, started)  # fmt: skip

        return named_event_stream(metered())
    try:
        transcript = await request.app.state.drain.watch(request, service.run(plan))  # cancelled if the client leaves
    except ClientLeft:
        await _done(request, key, model_id, "audio_transcriptions", admission, 0, 499, started)
        return Response(status_code=499)
    except BaseException as exc:
        await _done(request, key, model_id, "audio_transcriptions", admission, 0, _status(exc), started)
        raise
    await _done(request, key, model_id, "audio_transcriptions", admission, plan.seconds, 200, started)
    text, media_type = service.render(plan, transcript)
    return Response(text, media_type=media_type, headers=admission.headers)


async def _transcription_form(request: Request) -> tuple[TranscriptionForm, bytes]:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest("This endpoint takes multipart/form-data.")
    form = await request.form(max_files=1, max_fields=30)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidRequest("Missing required parameter: 'file' (an audio file).", param="file")
    data = await upload.read(MAX_AUDIO_BYTES + 1)
    if len(data) > MAX_AUDIO_BYTES:
        raise RequestTooLarge(f"Audio files may be at most {MAX_AUDIO_BYTES // 2**20} MB.", param="file")
    fields: dict[str, Any] = {}
    for name, value in form.multi_items():
        if name == "file":
            continue
        plain = name.removesuffix("[]")
        if plain in _LISTS:
            fields.setdefault(plain, []).append(value)
        elif plain == "stream":
            fields[plain] = str(value).lower() == "true"
        else:
            fields[plain] = value
    try:
        return TranscriptionForm.model_validate(fields), data
    except ValidationError as exc:
        raise invalid_body(exc, fields) from None


def _model_id(request: Request, key: ApiKey, model: str) -> str:
    may_call(request, key, model)
    request.state.model = model  # the metrics middleware's label
    return answering(request, key, model)


async def _admit(request: Request, key: ApiKey, model_id: str, units: int) -> Admission:
    admitter = request.app.state.admitter
    return await admitter.admit(key, model_id, (units, 0), admitter.prices(model_id))


async def _done(request: Request, key: ApiKey, model_id: str, kind: str, admission: Admission, units: int,
                status: int, started: float) -> None:  # fmt: skip
    """Settle the admission with what was used and write the usage record."""
    await admission.settle((units, 0))
    cost, _ = request.app.state.admitter.prices(model_id).split(units, 0)
    request.app.state.usage.record(UsageEvent(kind, key.project_id, key.id, model_id, request.url.path, status, units,
                                              0, 0, round(1000 * (time.perf_counter() - started)),
                                              input_micro_usd=cost,
                                              request_id=getattr(request.state, "request_id", None)))  # fmt: skip


def _status(exc: BaseException) -> int:
    return exc.status if isinstance(exc, HomeportError) else 500

