"""{{name}}: a wasmcalls bot. `/play <file or URL>` joins the voice chat and plays it;
`/stop` leaves. `wasmcalls dev` builds it (componentize-py) and reloads it on save;
`wasmcalls test` runs its scenarios."""

from wasmcalls_bot import Bot, NotInCallError, WasmcallsError

bot = Bot()


@bot.on_message(command="play")
def play(m):
    what = m.command.args
    if not what:
        return bot.chat.reply(m, "Usage: /play <file or URL>")
    try:
        bot.calls.play(m.chat, what)
        bot.chat.reply(m, f"▶ Playing {what}")
    except WasmcallsError as e:
        bot.chat.reply(m, f"Cannot play that: {e}")


@bot.on_message(command="stop")
def stop(m):
    try:
        bot.calls.leave(m.chat)
        bot.chat.reply(m, "⏹ Stopped")
    except NotInCallError:
        bot.chat.reply(m, "Nothing is playing.")


Handler, State, AudioEvents = bot.export()
