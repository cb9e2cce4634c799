"""Talk time in Python: how long each person has spoken in a call, from its audio.

/talktime (in a chat the bot is in a call of) answers with everyone's seconds so far.
It listens to each participant on their own — 16 kHz mono, 200 ms batches, what a
speech recogniser would take — and counts the batches' length, so a pause is never
counted. Needs grants.audio. Its custom API: {"listen": CHAT, "file": PATH} joins
the chat's call playing PATH and listens; {} answers the counts.
"""

from wasmcalls_bot import Bot

bot = Bot()


def seconds_of(chat):
    return bot.state.setdefault("talk", {}).setdefault(str(chat), {})


@bot.on_audio
def heard(chat, batch):
    talk = seconds_of(chat)
    who = str(batch.user) if batch.user is not None else f"source-{batch.source}"
    talk[who] = talk.get(who, 0) + len(batch.pcm) / 16000
    stats = bot.state.setdefault("stats", {"batches": 0, "dropped": 0})
    stats["batches"] += 1
    stats["dropped"] += batch.dropped


@bot.on_message(command="talktime")
def talktime(m):
    talk = seconds_of(m.chat)
    if not talk:
        bot.chat.reply(m, "Nobody has spoken yet.")
        return
    lines = [f"{who}: {s:.1f} s" for who, s in sorted(talk.items(), key=lambda kv: -kv[1])]
    bot.chat.reply(m, "\n".join(lines))


@bot.on_custom_api
def api(path, body):
    if isinstance(body, dict) and "listen" in body:
        chat = body["listen"]
        bot.calls.play(chat, body["file"])
        bot.calls.listen(chat, target="each", sample_rate=16000, channels=1, batch_ms=200)
        return {"ok": True}
    return {"talk": bot.state.get("talk", {}), "stats": bot.state.get("stats", {})}


Handler, State, AudioEvents = bot.export()
