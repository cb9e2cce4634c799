// Generated from wit/v0.2 by `npm run types` (jco guest-types; 64-bit integers as QuickJS passes them).
declare module 'wasmcalls:bot/types@0.2.2' {
  /**
   * A Telegram chat id, as the Bot API writes it: supergroups and channels are
   * `-100…`, basic groups `-…`, users positive.
   */
  export type ChatId = number;
  /**
   * A Telegram user id.
   */
  export type UserId = number;
  /**
   * A message's id within its chat.
   */
  export type MessageId = number;
  /**
   * Headerless PCM s16le: the only source that needs its format stated.
   */
  export interface RawPcm {
    /**
     * A file in a folder granted to the plugin.
     */
    path: string,
    /**
     * Its sample rate in Hz (any rate from 1000 to 384000).
     */
    sampleRate: number,
    /**
     * Its channel count (1 to 8; more than two are mixed down).
     */
    channels: number,
  }
  /**
   * The audio, voice note or audio document attached to a Telegram message.
   */
  export interface MessageMedia {
    /**
     * The chat the message is in.
     */
    chat: ChatId,
    /**
     * The message.
     */
    message: MessageId,
  }
  /**
   * An operator's named source command (`[sources.NAME]` in the host config).
   */
  export interface NamedSource {
    /**
     * Its name, which the plugin must be granted.
     */
    name: string,
    /**
     * Substituted for `{url}` / `{arg}` in its command.
     */
    argument: string,
  }
  /**
   * What a call plays. Files are recognised by their content (WAV, FLAC, MP3, AAC,
   * Vorbis, Opus…); Opus files are sent without re-encoding.
   */
  export type MediaSource = MediaSourceFile | MediaSourceUrl | MediaSourceRaw | MediaSourceMessage | MediaSourceNamed;
  /**
   * A file in a folder granted to the plugin.
   */
  export interface MediaSourceFile {
    tag: 'file',
    val: string,
  }
  /**
   * An `http(s)://` URL matching the plugin's URL grants: a file or a live stream.
   */
  export interface MediaSourceUrl {
    tag: 'url',
    val: string,
  }
  /**
   * Headerless PCM s16le in a stated format.
   */
  export interface MediaSourceRaw {
    tag: 'raw',
    val: RawPcm,
  }
  /**
   * The audio of a Telegram message (a user's upload: audio, voice, document).
   */
  export interface MediaSourceMessage {
    tag: 'message',
    val: MessageMedia,
  }
  /**
   * An operator's named source.
   */
  export interface MediaSourceNamed {
    tag: 'named',
    val: NamedSource,
  }
  /**
   * A Telegram refusal the contract has no case of its own for.
   */
  export interface TelegramError {
    /**
     * Telegram's error code (400, 403, 420…).
     */
    code: number,
    /**
     * Telegram's error name (`CHAT_WRITE_FORBIDDEN`…).
     */
    name: string,
  }
  /**
   * Why a command failed.
   */
  export type Error = ErrorNoActiveGroupCall | ErrorNotInCall | ErrorAlreadyInCall | ErrorStillConnecting | ErrorNothingPlaying | ErrorRateLimited | ErrorClientNotRunning | ErrorNoClient | ErrorPermissionDenied | ErrorInvalidArgument | ErrorSourceError | ErrorTelegram | ErrorOther;
  /**
   * The chat has no voice chat to join (and `create-if-missing` was not set, or
   * the account may not start one).
   */
  export interface ErrorNoActiveGroupCall {
    tag: 'no-active-group-call',
    val: ChatId,
  }
  /**
   * We are not in this chat's call.
   */
  export interface ErrorNotInCall {
    tag: 'not-in-call',
    val: ChatId,
  }
  /**
   * We are in this chat's call already: use `play` to change what it plays.
   */
  export interface ErrorAlreadyInCall {
    tag: 'already-in-call',
    val: ChatId,
  }
  /**
   * The call is still connecting; try again in a moment.
   */
  export interface ErrorStillConnecting {
    tag: 'still-connecting',
    val: ChatId,
  }
  /**
   * Nothing is playing in this chat's call.
   */
  export interface ErrorNothingPlaying {
    tag: 'nothing-playing',
    val: ChatId,
  }
  /**
   * Telegram's rate limits: retry after this many seconds.
   */
  export interface ErrorRateLimited {
    tag: 'rate-limited',
    val: number,
  }
  /**
   * The Telegram client is not connected (no session, or no network).
   */
  export interface ErrorClientNotRunning {
    tag: 'client-not-running',
  }
  /**
   * No Telegram account (or no bot account, for buttons) is configured.
   */
  export interface ErrorNoClient {
    tag: 'no-client',
    val: string,
  }
  /**
   * The plugin was not granted this chat, file, URL, source or capability.
   */
  export interface ErrorPermissionDenied {
    tag: 'permission-denied',
    val: string,
  }
  /**
   * An argument is out of range or malformed.
   */
  export interface ErrorInvalidArgument {
    tag: 'invalid-argument',
    val: string,
  }
  /**
   * The source cannot be played: missing, not audio, unreachable, damaged.
   */
  export interface ErrorSourceError {
    tag: 'source-error',
    val: string,
  }
  /**
   * Any other refusal by Telegram, with its code and name.
   */
  export interface ErrorTelegram {
    tag: 'telegram',
    val: TelegramError,
  }
  /**
   * Anything else, explained.
   */
  export interface ErrorOther {
    tag: 'other',
    val: string,
  }
  /**
   * What a joined call is doing.
   * # Variants
   * 
   * ## `"connecting"`
   * 
   * Joining: the WebRTC connection is being set up.
   * ## `"playing"`
   * 
   * Audio is being sent.
   * ## `"paused"`
   * 
   * Paused: connected, nothing sent, position kept.
   * ## `"idle"`
   * 
   * Connected with nothing to play.
   */
  export type CallState = 'connecting' | 'playing' | 'paused' | 'idle';
  /**
   * One joined call.
   */
  export interface CallStatus {
    /**
     * The chat whose call this is.
     */
    chat: ChatId,
    /**
     * What the call is doing.
     */
    state: CallState,
    /**
     * The source playing or paused, as the plugin named it.
     */
    source?: string,
    /**
     * Position in the source, in milliseconds.
     */
    positionMs: number,
    /**
     * The source's length; none when it is live or does not say.
     */
    durationMs?: number,
    /**
     * Volume in percent, 0–200.
     */
    volume: number,
    /**
     * Whether our participant shows as muted (the stream keeps its place).
     */
    muted: boolean,
  }
  /**
   * How to join a call.
   */
  export interface JoinOptions {
    /**
     * Join as this channel the account owns, instead of as the account itself.
     */
    joinAs?: ChatId,
    /**
     * An invite hash (from a `t.me/…?voicechat=<hash>` link) for calls that need one.
     */
    inviteHash?: string,
    /**
     * Join muted (the stream plays once unmuted).
     */
    startMuted: boolean,
    /**
     * Start a voice chat if the chat has none and the account may.
     */
    createIfMissing: boolean,
  }
  /**
   * Someone in a call.
   */
  export interface Participant {
    /**
     * The user (or the channel a participant speaks as, as a chat id).
     */
    peer: number,
    /**
     * Their audio source (SSRC).
     */
    source: number,
    /**
     * Muted (by themselves or an admin).
     */
    muted: boolean,
    /**
     * Speaking right now (from the audio level).
     */
    speaking: boolean,
    /**
     * Their volume as set by an admin, in percent.
     */
    volume: number,
    /**
     * This is our own participant.
     */
    isSelf: boolean,
  }
  /**
   * A page of a call's participants.
   */
  export interface ParticipantPage {
    /**
     * The participants on this page.
     */
    participants: Array<Participant>,
    /**
     * Pass to the next request for the following page; none on the last page.
     */
    nextOffset?: string,
    /**
     * How many participants the call has in all.
     */
    total: number,
  }
  /**
   * What changed about a participant.
   */
  export type ParticipantChange = ParticipantChangeJoined | ParticipantChangeLeft | ParticipantChangeMuted | ParticipantChangeUnmuted | ParticipantChangeStartedSpeaking | ParticipantChangeStoppedSpeaking;
  /**
   * Joined the call.
   */
  export interface ParticipantChangeJoined {
    tag: 'joined',
    val: Participant,
  }
  /**
   * Left the call.
   */
  export interface ParticipantChangeLeft {
    tag: 'left',
    val: number,
  }
  /**
   * Muted.
   */
  export interface ParticipantChangeMuted {
    tag: 'muted',
    val: number,
  }
  /**
   * Unmuted.
   */
  export interface ParticipantChangeUnmuted {
    tag: 'unmuted',
    val: number,
  }
  /**
   * Started speaking.
   */
  export interface ParticipantChangeStartedSpeaking {
    tag: 'started-speaking',
    val: number,
  }
  /**
   * Stopped speaking.
   */
  export interface ParticipantChangeStoppedSpeaking {
    tag: 'stopped-speaking',
    val: number,
  }
  /**
   * How message text is written.
   * # Variants
   * 
   * ## `"plain"`
   * 
   * As it is.
   * ## `"markdown"`
   * 
   * Telegram's Markdown (`**bold**`, `__italic__`, `` `code` ``, `[text](url)`).
   * ## `"html"`
   * 
   * Telegram's HTML subset (`<b>`, `<i>`, `<code>`, `<a href>`…).
   */
  export type TextFormat = 'plain' | 'markdown' | 'html';
  /**
   * What pressing a button does.
   */
  export type ButtonAction = ButtonActionCallback | ButtonActionUrl;
  /**
   * Sends the bot a callback query with this data (at most 64 bytes).
   */
  export interface ButtonActionCallback {
    tag: 'callback',
    val: string,
  }
  /**
   * Opens this URL.
   */
  export interface ButtonActionUrl {
    tag: 'url',
    val: string,
  }
  /**
   * An inline button under a message.
   */
  export interface Button {
    /**
     * Its label.
     */
    text: string,
    /**
     * What pressing it does.
     */
    action: ButtonAction,
  }
  /**
   * How to send a message.
   */
  export interface SendOptions {
    /**
     * How `text` is written.
     */
    format: TextFormat,
    /**
     * Reply to this message.
     */
    replyTo?: MessageId,
    /**
     * Send without a notification sound.
     */
    silent: boolean,
    /**
     * Rows of inline buttons (bot account only).
     */
    buttons: Array<Array<Button>>,
  }
  /**
   * A message the plugin sent: where it is.
   */
  export interface SentMessage {
    /**
     * The chat it is in.
     */
    chat: ChatId,
    /**
     * Its id there.
     */
    message: MessageId,
  }
  /**
   * What kind of media a message carries.
   * # Variants
   * 
   * ## `"audio"`
   * 
   * A music file.
   * ## `"voice"`
   * 
   * A voice note.
   * ## `"document"`
   * 
   * A document (any file).
   * ## `"video"`
   * 
   * A video (its audio can be played).
   */
  export type MediaKind = 'audio' | 'voice' | 'document' | 'video';
  /**
   * The media a message carries.
   */
  export interface Attachment {
    /**
     * What it is.
     */
    kind: MediaKind,
    /**
     * The file's name, if it has one.
     */
    fileName?: string,
    /**
     * Its MIME type, if known.
     */
    mimeType?: string,
    /**
     * Its size in bytes.
     */
    size: number,
    /**
     * Its duration in seconds, for audio, voice and video.
     */
    durationS?: number,
    /**
     * The track's title and performer, for audio.
     */
    title?: string,
    /**
     * The performer.
     */
    performer?: string,
  }
  /**
   * A `/command` at the start of a message.
   */
  export interface Command {
    /**
     * Its name, without the slash or the bot's username (`play` for `/play@mybot`).
     */
    name: string,
    /**
     * The rest of the message after it, trimmed.
     */
    args: string,
  }
  /**
   * The message a message replies to.
   */
  export interface Reply {
    /**
     * Its id.
     */
    message: MessageId,
    /**
     * Its media, if it has any (play it with the `message` media source).
     */
    media?: Attachment,
  }
  /**
   * A new message in a chat.
   */
  export interface Message {
    /**
     * The chat it is in.
     */
    chat: ChatId,
    /**
     * Its id there.
     */
    id: MessageId,
    /**
     * Who sent it.
     */
    sender: UserId,
    /**
     * Its text (or a media message's caption).
     */
    text: string,
    /**
     * The command it starts with, if any.
     */
    command?: Command,
    /**
     * What it replies to, if anything.
     */
    replyTo?: Reply,
    /**
     * Its own media, if any.
     */
    media?: Attachment,
    /**
     * When it was sent (Unix time).
     */
    date: number,
  }
  /**
   * A press on an inline button under one of the bot's messages.
   */
  export interface CallbackQuery {
    /**
     * Answer it with `chat.answer-callback` (Telegram shows a spinner until then).
     */
    id: string,
    /**
     * The chat the message is in.
     */
    chat: ChatId,
    /**
     * The message whose button was pressed.
     */
    message: MessageId,
    /**
     * Who pressed it.
     */
    sender: UserId,
    /**
     * The button's callback data.
     */
    data: string,
  }
  /**
   * A chat member's standing.
   * # Variants
   * 
   * ## `"creator"`
   * 
   * Created the chat.
   * ## `"administrator"`
   * 
   * An administrator.
   * ## `"member"`
   * 
   * A member.
   * ## `"restricted"`
   * 
   * A member with restrictions.
   * ## `"left"`
   * 
   * Not in the chat.
   * ## `"banned"`
   * 
   * Banned from the chat.
   */
  export type MemberStatus = 'creator' | 'administrator' | 'member' | 'restricted' | 'left' | 'banned';
  /**
   * An invitation to a group call.
   */
  export interface Invite {
    /**
     * The chat whose call we were invited to.
     */
    chat: ChatId,
    /**
     * Who invited us.
     */
    inviter: UserId,
    /**
     * The service message carrying the invitation.
     */
    messageId: MessageId,
  }
  /**
   * The accounts a plugin acts through.
   */
  export interface Identity {
    /**
     * The user account that joins calls.
     */
    user: UserId,
    /**
     * The bot account that sends messages with buttons, if one is configured.
     */
    bot?: UserId,
  }
  /**
   * A request to the plugin's HTTP API (`POST /api/<plugin>`).
   */
  export interface ApiRequest {
    /**
     * The request path.
     */
    path: string,
    /**
     * The body: a JSON document.
     */
    body: string,
  }
  /**
   * The plugin's answer to an API request.
   */
  export interface ApiResponse {
    /**
     * HTTP status code.
     */
    status: number,
    /**
     * The body: a JSON document.
     */
    body: string,
  }
  /**
   * Severity of a log line.
   * # Variants
   * 
   * ## `"trace"`
   * 
   * Very detailed tracing.
   * ## `"debug"`
   * 
   * Diagnostic detail.
   * ## `"info"`
   * 
   * Normal operation.
   * ## `"warn"`
   * 
   * Something unexpected, recovered from.
   * ## `"error"`
   * 
   * Something failed.
   */
  export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /**
   * Where a recording goes: only into folders granted by `grants.recordings`, and
   * never over a file that exists.
   */
  export type RecordTarget = RecordTargetMix | RecordTargetEach;
  /**
   * The call's mix — every other participant, as a listener hears them — to this
   * WAV file (48 kHz, 16-bit stereo).
   */
  export interface RecordTargetMix {
    tag: 'mix',
    val: string,
  }
  /**
   * Each participant to an Ogg Opus file of the very packets they sent (no
   * re-encode), `<user>-<source>.ogg` in this folder.
   */
  export interface RecordTargetEach {
    tag: 'each',
    val: string,
  }
  /**
   * Caps on one recording, within the operator's (`limits.record_seconds`,
   * `limits.record_mb`).
   */
  export interface RecordOptions {
    /**
     * Stop after this many seconds; none: the operator's cap.
     */
    maxSeconds?: number,
    /**
     * Stop once the files hold this many MiB; none: the operator's cap.
     */
    maxMb?: number,
  }
  /**
   * One file a recording wrote.
   */
  export interface RecordedFile {
    /**
     * Its path, as the plugin named the file or folder.
     */
    path: string,
    /**
     * The participant's source (SSRC), for a participant's file; none for the mix.
     */
    source?: number,
    /**
     * Audio in it, in milliseconds.
     */
    durationMs: number,
    /**
     * Its size in bytes (audio only, without headers).
     */
    bytes: number,
  }
  /**
   * What a recording wrote, once it ended.
   */
  export interface Recording {
    /**
     * The files, each participant's by path, then the mix.
     */
    files: Array<RecordedFile>,
    /**
     * Packets that never arrived (network loss): concealed in the mix, silence in
     * a participant's file.
     */
    lost: number,
    /**
     * Packets the recorder could not keep up with (a stalled disk).
     */
    dropped: number,
    /**
     * Why it ended on its own — a cap reached, a file that could not be written;
     * none when it was stopped or its call ended.
     */
    error?: string,
  }
  /**
   * Whose audio a listener hears.
   */
  export type ListenTarget = ListenTargetMix | ListenTargetEach | ListenTargetParticipant;
  /**
   * The call's mix — everyone else, as a listener hears them — in a batch every
   * `batch-ms`, silence included.
   */
  export interface ListenTargetMix {
    tag: 'mix',
  }
  /**
   * Each participant on their own, only while they speak.
   */
  export interface ListenTargetEach {
    tag: 'each',
  }
  /**
   * One participant, only while they speak.
   */
  export interface ListenTargetParticipant {
    tag: 'participant',
    val: UserId,
  }
  /**
   * The format of what a listener hears: libopus decodes straight to it.
   */
  export interface ListenOptions {
    /**
     * 8000, 12000, 16000, 24000 or 48000 (speech recognisers mostly want 16000).
     */
    sampleRate: number,
    /**
     * 1 (mono) or 2 (stereo, interleaved).
     */
    channels: number,
    /**
     * Audio per batch, from 20 to 1000 ms, a multiple of 20 (100–200 ms suits
     * most uses; each batch is one event).
     */
    batchMs: number,
  }
  /**
   * A stretch of a call's audio, about 100 ms behind real time.
   */
  export interface AudioBatch {
    /**
     * Who spoke it, when known; none for the mix.
     */
    user?: UserId,
    /**
     * Their source (SSRC); none for the mix.
     */
    source?: number,
    /**
     * Where it starts, in milliseconds since `listen`: a jump in a participant's
     * batches is a pause; in the mix's, batches dropped.
     */
    atMs: number,
    /**
     * 16-bit samples, interleaved when stereo.
     */
    pcm: Int16Array,
    /**
     * Batches dropped since the one before this, because the plugin had not
     * handled them yet (its queue holds 16).
     */
    dropped: number,
  }
}
