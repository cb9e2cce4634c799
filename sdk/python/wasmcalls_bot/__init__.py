"""Write wasmcalls bots in Python, on the ``wasmcalls:bot@0.2.2`` contract.

In PyTgCalls' style: make a :class:`Bot`, register handlers with its decorators,
and export it::

    from wasmcalls_bot import Bot, Button, NoActiveGroupCall

    bot = Bot()

    @bot.on_message(command="play")
    def play(message):
        try:
            bot.calls.play(message.chat, message.command.args)
        except NoActiveGroupCall:
            bot.chat.reply(message, "Start a voice chat first.")

    Handler, State, AudioEvents = bot.export()

The module is built into a component with componentize-py (``wasmcalls new --lang
python`` sets it up)::

    componentize-py -d wit -w bot-with-audio componentize app -p . -o bot.wasm

Commands raise exceptions named like pytgcalls' (:class:`NoActiveGroupCall`,
:class:`NotInCallError`, :class:`AlreadyJoinedError`, …), all :class:`WasmcallsError`.
``bot.state`` is a dict handed to the next version across a hot reload (it must be
JSON-able); ``bot.settings`` is the plugin's settings as a dict.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator, List, Optional, Sequence, Union

from componentize_py_types import Err
from wit_world import exports as _exports
from wit_world.imports import audio as _audio
from wit_world.imports import calls as _calls
from wit_world.imports import chat as _chat
from wit_world.imports import config as _config
from wit_world.imports import logging as _logging
from wit_world.imports import types as T

__all__ = [
    "Bot",
    "Button",
    "Source",
    "WasmcallsError",
    "NoActiveGroupCall",
    "NotInCallError",
    "AlreadyJoinedError",
    "StillConnecting",
    "NothingPlaying",
    "RateLimited",
    "ClientNotRunning",
    "NoClient",
    "PermissionDenied",
    "InvalidArgument",
    "SourceError",
    "TelegramServerError",
    "T",
]


# --- Errors -------------------------------------------------------------------


class WasmcallsError(Exception):
    """A command failed; the subclass says how."""


class NoActiveGroupCall(WasmcallsError):
    """The chat has no voice chat running (pytgcalls' ``NoActiveGroupCall``)."""

    def __init__(self, chat: int):
        super().__init__(f"chat {chat} has no voice chat running")
        self.chat = chat


class NotInCallError(WasmcallsError):
    """We are not in the chat's call (pytgcalls' ``NotInCallError``)."""

    def __init__(self, chat: int):
        super().__init__(f"not in chat {chat}'s call")
        self.chat = chat


class AlreadyJoinedError(WasmcallsError):
    """We are in the chat's call already (pytgcalls' ``AlreadyJoinedError``); use ``play``."""

    def __init__(self, chat: int):
        super().__init__(f"already in chat {chat}'s call")
        self.chat = chat


class StillConnecting(WasmcallsError):
    def __init__(self, chat: int):
        super().__init__(f"chat {chat}'s call is still connecting")
        self.chat = chat


class NothingPlaying(WasmcallsError):
    def __init__(self, chat: int):
        super().__init__(f"nothing is playing in chat {chat}")
        self.chat = chat


class RateLimited(WasmcallsError):
    """Telegram's limits: retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"rate-limited: retry in {retry_after} s")
        self.retry_after = retry_after


class ClientNotRunning(WasmcallsError):
    """The Telegram client is not connected (pytgcalls' ``ClientNotStarted``)."""


class NoClient(WasmcallsError):
    """No Telegram account (or no bot account, for buttons) is configured."""


class PermissionDenied(WasmcallsError):
    """The plugin was not granted this chat, file, URL, source or capability."""


class InvalidArgument(WasmcallsError):
    pass


class SourceError(WasmcallsError):
    """The source cannot be played: missing, not audio, unreachable, damaged."""


class TelegramServerError(WasmcallsError):
    """Any other refusal by Telegram, with its code and name."""

    def __init__(self, code: int, name: str):
        super().__init__(f"Telegram refused it: {code} {name}")
        self.code = code
        self.name = name


def _error(e: Any) -> WasmcallsError:
    """The exception for a contract ``error`` case."""
    simple = {
        T.Error_NoActiveGroupCall: NoActiveGroupCall,
        T.Error_NotInCall: NotInCallError,
        T.Error_AlreadyInCall: AlreadyJoinedError,
        T.Error_StillConnecting: StillConnecting,
        T.Error_NothingPlaying: NothingPlaying,
        T.Error_RateLimited: RateLimited,
        T.Error_NoClient: NoClient,
        T.Error_PermissionDenied: PermissionDenied,
        T.Error_InvalidArgument: InvalidArgument,
        T.Error_SourceError: SourceError,
        T.Error_Other: WasmcallsError,
    }
    if isinstance(e, T.Error_ClientNotRunning):
        return ClientNotRunning("the Telegram client is not connected")
    if isinstance(e, T.Error_Telegram):
        return TelegramServerError(e.value.code, e.value.name)
    return simple.get(type(e), WasmcallsError)(e.value)


def _call(f: Callable, *args: Any) -> Any:
    try:
        return f(*args)
    except Err as e:
        raise _error(e.value) from None


# --- Sources and buttons ------------------------------------------------------


class Source:
    """What a call plays. A plain ``str`` works too: a URL, ``name:argument`` for an
    operator's named source, or a file path."""

    @staticmethod
    def file(path: str) -> T.MediaSource:
        return T.MediaSource_File(path)

    @staticmethod
    def url(url: str) -> T.MediaSource:
        return T.MediaSource_Url(url)

    @staticmethod
    def raw(path: str, sample_rate: int = 48000, channels: int = 2) -> T.MediaSource:
        """Headerless PCM s16le in a stated format."""
        return T.MediaSource_Raw(T.RawPcm(path, sample_rate, channels))

    @staticmethod
    def message(chat: int, message: int) -> T.MediaSource:
        """The audio, voice note or document of a message."""
        return T.MediaSource_Message(T.MessageMedia(chat, message))

    @staticmethod
    def named(name: str, argument: str = "") -> T.MediaSource:
        return T.MediaSource_Named(T.NamedSource(name, argument))

    @staticmethod
    def parse(text: str) -> T.MediaSource:
        text = text.strip()
        if text.startswith(("http://", "https://")):
            return Source.url(text)
        name, sep, arg = text.partition(":")
        if sep and name and all(c.isalnum() or c in "-_" for c in name):
            return Source.named(name, arg)
        return Source.file(text)


def _source(s: Union[str, Any]) -> Any:
    return Source.parse(s) if isinstance(s, str) else s


def Button(text: str, data: Optional[str] = None, url: Optional[str] = None) -> T.Button:
    """An inline button: ``data`` sends the bot a callback query, ``url`` opens a link."""
    if (data is None) == (url is None):
        raise InvalidArgument("a button has either data or a url")
    action = T.ButtonAction_Callback(data) if data is not None else T.ButtonAction_Url(url)
    return T.Button(text, action)


def _rows(buttons: Optional[Sequence]) -> List[List[T.Button]]:
    """Rows of buttons; a flat list is one row."""
    if not buttons:
        return []
    if all(isinstance(b, T.Button) for b in buttons):
        return [list(buttons)]
    return [list(row) for row in buttons]


_FORMATS = {"plain": T.TextFormat.PLAIN, "markdown": T.TextFormat.MARKDOWN, "html": T.TextFormat.HTML}


def _format(f: Union[str, T.TextFormat]) -> T.TextFormat:
    if isinstance(f, T.TextFormat):
        return f
    try:
        return _FORMATS[f]
    except KeyError:
        raise InvalidArgument(f"format {f!r}: write plain, markdown or html") from None


# --- Commands -----------------------------------------------------------------


class Calls:
    """Group calls: ``bot.calls``."""

    def join(
        self,
        chat: int,
        source: Union[str, T.MediaSource],
        join_as: Optional[int] = None,
        invite_hash: Optional[str] = None,
        start_muted: bool = False,
        create: bool = False,
    ) -> None:
        """Joins ``chat``'s call and plays ``source``; returns once audio flows."""
        options = T.JoinOptions(join_as, invite_hash, start_muted, create)
        _call(_calls.join, chat, _source(source), options)

    def leave(self, chat: int, close: bool = False) -> None:
        """Leaves the call; ``close`` ends the voice chat for everyone (admins only)."""
        _call(_calls.leave, chat, close)

    def play(self, chat: int, source: Union[str, T.MediaSource]) -> None:
        """Plays another source in a joined call, or joins to play it."""
        if _calls.status(chat) is None:
            self.join(chat, source)
        else:
            _call(_calls.play, chat, _source(source))

    def pause(self, chat: int) -> None:
        _call(_calls.pause, chat)

    def resume(self, chat: int) -> None:
        _call(_calls.resume, chat)

    def mute(self, chat: int) -> None:
        _call(_calls.mute, chat)

    def unmute(self, chat: int) -> None:
        _call(_calls.unmute, chat)

    def seek(self, chat: int, seconds: float) -> None:
        _call(_calls.seek, chat, int(seconds * 1000))

    def volume(self, chat: int, percent: int) -> None:
        """0–200 %."""
        _call(_calls.set_volume, chat, percent)

    def status(self, chat: int) -> Optional[T.CallStatus]:
        return _calls.status(chat)

    def joined(self) -> List[T.CallStatus]:
        return _calls.joined()

    def participants(self, chat: int, page: int = 100) -> Iterator[T.Participant]:
        """Everyone in the call, fetched page by page as it is iterated."""
        offset: Optional[str] = None
        while True:
            p = _call(_calls.participants, chat, offset, page)
            yield from p.participants
            if p.next_offset is None:
                return
            offset = p.next_offset

    def record(
        self,
        chat: int,
        mix: Optional[str] = None,
        each: Optional[str] = None,
        max_seconds: Optional[int] = None,
        max_mb: Optional[int] = None,
    ) -> None:
        """Records the call — the mix to a WAV file (``mix``), or each participant to an
        Ogg Opus file of their own in a folder (``each``) — inside ``grants.recordings``."""
        target = T.RecordTarget_Mix(mix) if mix is not None else T.RecordTarget_Each(each or "")
        _call(_audio.record, chat, target, T.RecordOptions(max_seconds, max_mb))

    def stop_record(self, chat: int) -> T.Recording:
        """Stops recording: what was written (``files``, ``lost``, ``dropped``, ``error``)."""
        return _call(_audio.stop_record, chat)

    def bridge(self, from_chat: int, to_chat: int) -> None:
        """Plays ``from_chat``'s call, mixed, into ``to_chat``'s (about 100 ms behind)."""
        _call(_audio.bridge, from_chat, to_chat)

    def unbridge(self, to_chat: int) -> None:
        _call(_audio.unbridge, to_chat)

    def listen(
        self,
        chat: int,
        target: Union[str, int] = "mix",
        sample_rate: int = 16000,
        channels: int = 1,
        batch_ms: int = 200,
    ) -> None:
        """Hands the call's audio to ``@bot.on_audio`` as 16-bit PCM (needs
        ``grants.audio``): ``"mix"``, ``"each"`` participant, or one participant's user id."""
        if isinstance(target, int):
            who: Any = T.ListenTarget_Participant(target)
        else:
            who = T.ListenTarget_Each() if target == "each" else T.ListenTarget_Mix()
        _call(_audio.listen, chat, who, T.ListenOptions(sample_rate, channels, batch_ms))

    def unlisten(self, chat: int) -> None:
        _call(_audio.unlisten, chat)


class Chat:
    """Messages: ``bot.chat`` (needs ``grants.messages``)."""

    def send(
        self,
        chat: int,
        text: str,
        format: Union[str, T.TextFormat] = "plain",
        reply_to: Optional[int] = None,
        silent: bool = False,
        buttons: Optional[Sequence] = None,
    ) -> int:
        """Sends a message; its id."""
        options = T.SendOptions(_format(format), reply_to, silent, _rows(buttons))
        return _call(_chat.send, chat, text, options).message

    def reply(self, to: T.Message, text: str, **options: Any) -> int:
        """Sends ``text`` in reply to message ``to``."""
        return self.send(to.chat, text, reply_to=to.id, **options)

    def edit(
        self,
        chat: int,
        message: int,
        text: str,
        format: Union[str, T.TextFormat] = "plain",
        buttons: Optional[Sequence] = None,
    ) -> None:
        _call(_chat.edit, chat, message, text, _format(format), _rows(buttons))

    def delete(self, chat: int, message: int) -> None:
        _call(_chat.delete, chat, message)

    def answer(self, query: Union[str, T.CallbackQuery], text: Optional[str] = None, alert: bool = False) -> None:
        """Answers a button press (Telegram shows a spinner until then)."""
        qid = query if isinstance(query, str) else query.id
        _call(_chat.answer_callback, qid, text, alert)

    def member(self, chat: int, user: int) -> T.MemberStatus:
        return _call(_chat.member, chat, user)

    def is_admin(self, chat: int, user: int) -> bool:
        return self.member(chat, user) in (T.MemberStatus.CREATOR, T.MemberStatus.ADMINISTRATOR)


# --- The bot ------------------------------------------------------------------

_LEVELS = {
    "trace": T.LogLevel.TRACE,
    "debug": T.LogLevel.DEBUG,
    "info": T.LogLevel.INFO,
    "warn": T.LogLevel.WARN,
    "error": T.LogLevel.ERROR,
}


class Bot:
    """A bot: its handlers, its commands (``calls``, ``chat``), its settings and state."""

    def __init__(self) -> None:
        self.calls = Calls()
        self.chat = Chat()
        #: Handed to the next version across a hot reload (must be JSON-able).
        self.state: dict = {}
        #: The accounts the host acts through (set at start).
        self.me: Optional[T.Identity] = None
        self._settings: Optional[dict] = None
        self._handlers: dict = {}
        self._commands: dict = {}
        self._buttons: dict = {}

    @property
    def settings(self) -> dict:
        """The plugin's settings (``[plugins.settings]``)."""
        if self._settings is None:
            self._settings = json.loads(_config.settings() or "{}")
        return self._settings

    def log(self, message: str, level: str = "info") -> None:
        _logging.log(_LEVELS.get(level, T.LogLevel.INFO), message)

    # Decorators: each registers the function and returns it unchanged.

    def _on(self, event: str) -> Callable:
        def register(f: Callable) -> Callable:
            self._handlers.setdefault(event, []).append(f)
            return f

        return register

    def on_start(self, f: Callable) -> Callable:
        """``f(me)``: the host is running."""
        return self._on("start")(f)

    def on_message(self, command: Union[str, Sequence[str], None] = None) -> Callable:
        """``f(message)`` for every message, or only the ``/command`` (or commands) named."""

        def register(f: Callable) -> Callable:
            if command is None:
                self._handlers.setdefault("message", []).append(f)
            else:
                for c in [command] if isinstance(command, str) else command:
                    self._commands[c.lstrip("/").lower()] = f
            return f

        return register

    def on_callback_query(self, data: Optional[str] = None) -> Callable:
        """``f(query)`` for every button press, or only those carrying ``data``."""

        def register(f: Callable) -> Callable:
            if data is None:
                self._handlers.setdefault("callback", []).append(f)
            else:
                self._buttons[data] = f
            return f

        return register

    def on_stream_end(self, f: Callable) -> Callable:
        """``f(chat)``: the stream played to its end."""
        return self._on("stream_end")(f)

    def on_participants(self, f: Callable) -> Callable:
        """``f(chat, changes)``: who is in the call changed."""
        return self._on("participants")(f)

    def on_kicked(self, f: Callable) -> Callable:
        return self._on("kicked")(f)

    def on_call_ended(self, f: Callable) -> Callable:
        return self._on("call_ended")(f)

    def on_connection_lost(self, f: Callable) -> Callable:
        """``f(chat, reason)``."""
        return self._on("connection_lost")(f)

    def on_group_call_invite(self, f: Callable) -> Callable:
        return self._on("invite")(f)

    def on_custom_api(self, f: Callable) -> Callable:
        """``f(path, body) -> dict | (status, dict)``: ``POST /api/<plugin>``."""
        return self._on("api")(f)

    def on_raw_update(self, f: Callable) -> Callable:
        """``f(update)``, the update as a dict."""
        return self._on("raw")(f)

    def on_recording_ended(self, f: Callable) -> Callable:
        """``f(chat, recording)``: a recording ended by itself (a cap, a file that could
        not be written, its call gone); ``recording.error`` says why."""
        return self._on("recording_ended")(f)

    def on_audio(self, f: Callable) -> Callable:
        """``f(chat, batch)``: audio of a call it listens to (``batch.pcm``, a list of
        samples; ``batch.user``, ``batch.at_ms``, ``batch.dropped``). Keep it quick:
        batches that arrive faster than they are handled are dropped and counted."""
        return self._on("audio")(f)

    # Dispatch.

    def _fire(self, event: str, *args: Any) -> None:
        for f in self._handlers.get(event, []):
            f(*args)

    def export(self) -> tuple:
        """The ``Handler``, ``State`` and ``AudioEvents`` classes componentize-py exports."""
        bot = self

        class Handler(_exports.Handler):
            def on_start(self, me: T.Identity) -> None:
                bot.me = me
                bot._fire("start", me)

            def on_message(self, message: T.Message) -> None:
                if message.command is not None and message.command.name in bot._commands:
                    bot._commands[message.command.name](message)
                bot._fire("message", message)

            def on_callback_query(self, query: T.CallbackQuery) -> None:
                if query.data in bot._buttons:
                    bot._buttons[query.data](query)
                bot._fire("callback", query)

            def on_stream_end(self, chat: int) -> None:
                bot._fire("stream_end", chat)

            def on_participants(self, chat: int, changes: List[T.ParticipantChange]) -> None:
                bot._fire("participants", chat, changes)

            def on_kicked(self, chat: int) -> None:
                bot._fire("kicked", chat)

            def on_call_ended(self, chat: int) -> None:
                bot._fire("call_ended", chat)

            def on_connection_lost(self, chat: int, reason: str) -> None:
                bot._fire("connection_lost", chat, reason)

            def on_group_call_invite(self, invite: T.Invite) -> None:
                bot._fire("invite", invite)

            def on_custom_api(self, request: T.ApiRequest) -> T.ApiResponse:
                handlers = bot._handlers.get("api", [])
                if not handlers:
                    return T.ApiResponse(404, json.dumps({"error": "this plugin has no custom API"}))
                body = json.loads(request.body or "null")
                answer = handlers[0](request.path, body)
                status, payload = answer if isinstance(answer, tuple) else (200, answer)
                return T.ApiResponse(status, json.dumps(payload))

            def on_raw_update(self, update: str) -> None:
                if bot._handlers.get("raw"):
                    bot._fire("raw", json.loads(update))

        class State(_exports.State):
            def save(self) -> bytes:
                return json.dumps(bot.state).encode() if bot.state else b""

            def restore(self, state: bytes) -> None:
                bot.state = json.loads(state.decode())

        class AudioEvents(_exports.AudioEvents):
            def on_recording_ended(self, chat: int, recording: T.Recording) -> None:
                bot._fire("recording_ended", chat, recording)

            def on_audio(self, chat: int, batch: T.AudioBatch) -> None:
                bot._fire("audio", chat, batch)

        return Handler, State, AudioEvents
