"""Musicbot in Python: the same bot as plugins/musicbot (Rust), on the same contract.

/play <file | url | source:arg> or /play replying to an audio file or voice note;
/queue; /skip, /pause, /resume, /stop, /volume N, /seek SECONDS (admins, unless
admin_only = false); a "now playing" message with pause/skip/stop buttons; leaves when
the queue runs out; the queues survive a hot reload. Settings: chat, autoplay,
admin_only.
"""

from wasmcalls_bot import Bot, Button, NoActiveGroupCall, Source, T, WasmcallsError

bot = Bot()


def player(chat):
    """One chat's player, kept in bot.state so it survives a reload."""
    players = bot.state.setdefault("players", {})
    return players.setdefault(str(chat), {"now": None, "queue": [], "paused": False, "message": None})


def forget(chat):
    bot.state.get("players", {}).pop(str(chat), None)


def playing(chat):
    p = bot.state.get("players", {}).get(str(chat))
    return p is not None and p["now"] is not None


def source_of(track):
    if "message" in track:
        return Source.message(track["chat"], track["message"])
    return Source.parse(track["typed"])


def buttons(paused):
    toggle = Button("▶ Resume", data="resume") if paused else Button("⏸ Pause", data="pause")
    return [[toggle, Button("⏭ Skip", data="skip"), Button("⏹ Stop", data="stop")]]


def now_text(chat):
    p = bot.state.get("players", {}).get(str(chat))
    if p is None or p["now"] is None:
        return "Nothing is playing."
    t = p["now"]
    state = "⏸ Paused" if p["paused"] else "🎵 Now playing"
    by = f"\nRequested by `{t['by']}`" if t["by"] else ""
    more = f"\n{len(p['queue'])} more in the queue" if p["queue"] else ""
    return f"{state}: **{t['title']}**{by}{more}"


def say(chat, text):
    try:
        bot.chat.send(chat, text, format="markdown")
    except WasmcallsError as e:
        bot.log(f"cannot say {text!r} in {chat}: {e}", "warn")


def answer(message, text):
    try:
        bot.chat.reply(message, text, format="markdown")
    except WasmcallsError as e:
        bot.log(f"cannot answer in {message.chat}: {e}", "warn")


def announce(chat):
    """Posts a fresh now-playing message (the old one loses its buttons)."""
    retire(chat, None)
    p = player(chat)
    try:
        p["message"] = bot.chat.send(chat, now_text(chat), format="markdown", buttons=buttons(p["paused"]))
    except WasmcallsError as e:
        bot.log(f"cannot post the now-playing message in {chat}: {e}", "warn")


def refresh(chat):
    p = player(chat)
    if p["message"] is None:
        return
    try:
        bot.chat.edit(chat, p["message"], now_text(chat), format="markdown", buttons=buttons(p["paused"]))
    except WasmcallsError:
        pass  # Telegram refuses an edit that changes nothing


def retire(chat, last):
    p = player(chat)
    if p["message"] is None:
        return
    message, p["message"] = p["message"], None
    try:
        bot.chat.edit(chat, message, last or now_text(chat), format="markdown")
    except WasmcallsError:
        pass


def start(chat, track):
    """Plays track now: joins the call, or switches what it plays."""
    status = bot.calls.status(chat)
    bot.calls.play(chat, source_of(track))
    # A paused call stays paused across `play`: the new track should sound.
    if status is not None and status.state == T.CallState.PAUSED:
        bot.calls.resume(chat)
    p = player(chat)
    p["now"] = track
    p["paused"] = False
    announce(chat)


def next_track(chat):
    """Plays the next queued track, or leaves when there is none."""
    while True:
        p = player(chat)
        if not p["queue"]:
            p["now"] = None
            retire(chat, "✅ The queue is finished.")
            try:
                bot.calls.leave(chat)
            except WasmcallsError:
                pass
            forget(chat)
            return
        track = p["queue"].pop(0)
        try:
            start(chat, track)
            return
        except WasmcallsError as e:
            say(chat, f"⚠️ Skipping **{track['title']}**: {e}")


def allowed(chat, user):
    if not bot.settings.get("admin_only", True):
        return True
    try:
        return bot.chat.is_admin(chat, user)
    except WasmcallsError:
        return False


def control(chat, what, arg):
    """A control from a command or a button: what to tell the user."""
    if not playing(chat):
        return "Nothing is playing."
    try:
        if what == "pause":
            bot.calls.pause(chat)
            player(chat)["paused"] = True
            said = "⏸ Paused."
        elif what == "resume":
            bot.calls.resume(chat)
            player(chat)["paused"] = False
            said = "▶ Resumed."
        elif what == "skip":
            next_track(chat)
            return "⏭ Skipped."
        elif what == "stop":
            p = player(chat)
            p["queue"].clear()
            p["now"] = None
            retire(chat, "⏹ Stopped.")
            forget(chat)
            bot.calls.leave(chat)
            return "⏹ Stopped."
        elif what == "volume":
            v = arg.rstrip("%")
            if not v.isdigit() or int(v) > 200:
                return "Usage: `/volume N`, N from 0 to 200."
            bot.calls.volume(chat, int(v))
            said = f"🔊 Volume {int(v)} %."
        elif what == "seek":
            try:
                s = float(arg)
            except ValueError:
                return "Usage: `/seek SECONDS`."
            if s < 0:
                return "Usage: `/seek SECONDS`."
            bot.calls.seek(chat, s)
            said = f"⏩ Moved to {s:g} s."
        else:
            return f"I do not know {what}."
    except WasmcallsError as e:
        return f"⚠️ {e}"
    refresh(chat)
    return said


@bot.on_start
def started(me):
    bot.log(f"musicbot ready (account {me.user}, bot {me.bot})")
    chat, autoplay = bot.settings.get("chat"), bot.settings.get("autoplay", [])
    if chat is None or not autoplay:
        return
    tracks = [{"typed": s, "title": s.rsplit("/", 1)[-1], "by": 0} for s in autoplay]
    player(chat)["queue"].extend(tracks[1:])
    try:
        start(chat, tracks[0])
    except WasmcallsError as e:
        bot.log(f"autoplay in {chat} failed: {e}", "error")
        forget(chat)


@bot.on_message(command="play")
def play(m):
    args = m.command.args
    reply = m.reply_to
    if args:
        track = {"typed": args, "title": args.rsplit("/", 1)[-1], "by": m.sender}
    elif reply is not None and reply.media is not None:
        media = reply.media
        if media.kind == T.MediaKind.DOCUMENT and not (media.mime_type or "").startswith("audio/"):
            return answer(m, "That file is not audio.")
        fallback = "a voice note" if media.kind == T.MediaKind.VOICE else "audio"
        title = media.title or media.file_name or fallback
        track = {"chat": m.chat, "message": reply.message, "title": title, "by": m.sender}
    else:
        return answer(m, "Usage: `/play <file or URL>`, or reply `/play` to an audio file or voice note.")
    if playing(m.chat):
        p = player(m.chat)
        p["queue"].append(track)
        answer(m, f"➕ Queued #{len(p['queue'])}: **{track['title']}**")
        refresh(m.chat)
        return
    try:
        start(m.chat, track)
    except WasmcallsError as e:
        forget(m.chat)
        why = "there is no voice chat here; start one and try again" if isinstance(e, NoActiveGroupCall) else str(e)
        answer(m, f"⚠️ Cannot play that: {why}")


@bot.on_message(command="queue")
def queue(m):
    if not playing(m.chat):
        return answer(m, "The queue is empty.")
    text = now_text(m.chat)
    for i, t in enumerate(player(m.chat)["queue"], 1):
        text += f"\n{i}. {t['title']}"
    answer(m, text)


@bot.on_message(command=["skip", "pause", "resume", "stop", "volume", "seek"])
def controls(m):
    if not allowed(m.chat, m.sender):
        return answer(m, "Only the chat's admins can do that.")
    answer(m, control(m.chat, m.command.name, m.command.args))


@bot.on_callback_query()
def pressed(q):
    if not allowed(q.chat, q.sender):
        text = "Only the chat's admins can do that."
    elif bot.state.get("players", {}).get(str(q.chat), {}).get("message") != q.message:
        text = "That message is old; use the newest one."
    else:
        text = control(q.chat, q.data, "")
    try:
        bot.chat.answer(q, text)
    except WasmcallsError as e:
        bot.log(f"cannot answer a button press: {e}", "warn")


@bot.on_stream_end
def ended(chat):
    next_track(chat)


@bot.on_kicked
def kicked(chat):
    forget(chat)


@bot.on_call_ended
def call_ended(chat):
    forget(chat)


@bot.on_connection_lost
def lost(chat, reason):
    retire(chat, "⚠️ Lost the call's connection.")
    forget(chat)
    bot.log(f"lost the call in {chat}: {reason}", "warn")


Handler, State, AudioEvents = bot.export()
