// chunkstream live page: the WebTransport runner (HTTP/3 over UDP), the fifth transport.
//
// A session takes two steps. `GET stream/wt?…` (relative to the page, like every stream, so
// it works under a proxy's prefix) answers the session's URL, on the server's UDP port, and
// the SHA-256 of the server's own certificate; then `new WebTransport(url,
// {serverCertificateHashes})` opens the session. The chunks arrive on the first
// unidirectional stream the server opens, one chunk's JSON per line; control lines
// (`{"action":"pause"|"resume"|"stop"}`) go out on one unidirectional stream of the page's.
//
// Where there is no WebTransport — a browser without it, a page outside a secure context, a
// server run with `--webtransport off`, UDP blocked on the way or a proxy that carries only
// TCP — the panel says so in words and ends `unavailable`; the other panels run as ever.
// A server that goes away (close code 1) is asked again, and the stream resumes with `start`.

import { errorMessage, STOP_GRACE_MS } from "./runners.js";

/** How long a session may take to be ready: past it, UDP is taken to be blocked (a dropped
 * handshake would otherwise wait for the browser's own timeout). */
const READY_TIMEOUT_MS = 10000;
/** The session's close codes (and the chunk stream's reset codes), as API.md lists them. */
const CODES = { done: 0, goingAway: 1, protocolError: 2, stalled: 3 };
/** After a going-away close: how long between two tries to resume, and how many tries. */
const RESUME_DELAY_MS = 1000;
const RESUME_TRIES = 30;
/** How often the panel reads the session's statistics (its bytes on the wire), in ms. */
const STATS_MS = 500;

/** Why this page can open no WebTransport session at all, or `null`. */
function missing() {
  if (typeof WebTransport !== "undefined") return null;
  if (!window.isSecureContext) {
    return "browsers offer WebTransport to secure pages only: open this page over HTTPS, or at localhost or 127.0.0.1.";
  }
  return "this browser has no WebTransport (Chromium has it since version 97, Firefox since 114).";
}

/** The words every unavailable panel starts with: a test and a reader look for them. */
const UNAVAILABLE = "WebTransport is unavailable";

/** A base64 string's bytes (a certificate hash, as `serverCertificateHashes` takes it). */
function bytesOf(base64) {
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

/** Bytes for people, as the other panels show them. */
function kib(bytes) {
  return `${(bytes / 1024).toLocaleString("en", { maximumFractionDigits: 1 })} KiB`;
}

/** Waits `ms`, unless the run ends first. */
function delay(run, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    run.onEnd = () => {
      clearTimeout(timer);
      resolve();
    };
  });
}

/** A session's close code and reason, once it closed (`null` if it failed without one). */
async function closeInfo(transport, within) {
  const timeout = new Promise((resolve) => setTimeout(() => resolve(null), within));
  const closed = transport.closed.then(
    (info) => info,
    () => null,
  );
  return Promise.race([closed, timeout]);
}

/** One WebTransport session of a run: its control stream and its statistics. */
class Session {
  constructor(run, transport) {
    this.run = run;
    this.transport = transport;
    this.writer = null; // the control stream's writer, a promise once opened
    this.open = false; // ready, and not closed by the page
    this.encoder = new TextEncoder();
    this.stats = null;
  }

  /** Writes a control line, opening the control stream on first use. */
  send(action) {
    const line = this.encoder.encode(`${JSON.stringify({ action })}\n`);
    this.writer ??= this.transport.createUnidirectionalStream().then((s) => s.getWriter());
    this.writer = this.writer.then(async (w) => {
      await w.write(line);
      return w;
    });
    this.writer.catch(() => {}); // a closed session takes no more lines: nothing to do
  }

  /** Closes the session (a no-op once it is closed). */
  close() {
    this.open = false;
    try {
      this.transport.close({ closeCode: CODES.done, reason: "closed by the page" });
    } catch (_) {
      // Already closed or failed.
    }
  }

  /** Reads the session's bytes on the wire into the run, every STATS_MS while it is open. */
  watch() {
    if (typeof this.transport.getStats !== "function") return;
    const read = async () => {
      try {
        const stats = await this.transport.getStats();
        if (typeof stats.bytesReceived === "number") {
          this.run.wire = `${kib(stats.bytesReceived)} received (the session's QUIC packets)`;
        }
      } catch (_) {
        clearInterval(this.stats); // closed: the last figure stays
      }
    };
    read();
    this.stats = setInterval(read, STATS_MS);
    this.transport.closed.finally(() => clearInterval(this.stats)).catch(() => {});
  }
}

/**
 * Opens one session from `start` and reads its chunks into the run. Returns how it ended:
 * `{ done: true }` after the last chunk (or once the run ended), `{ goingAway: true }` when
 * the server went away, `{ unreachable: message, udp }` when the server could not be reached
 * (`udp`: over HTTP it could), `{ unavailable: message }` when the server has no
 * WebTransport, or `{ error: message }`.
 */
async function session(run, start) {
  const query = new URLSearchParams(run.params.query);
  query.set("start", String(start));
  const url = new URL(`${run.panel.transport.route}?${query}`, location.href);
  let resp;
  run.fetching = true; // an HTTP request: over HTTP/1.1 it may wait for a connection
  try {
    resp = await fetch(url, { cache: "no-store" });
  } catch (err) {
    return { unreachable: `the server could not be asked where the session is: ${err.message}`, udp: false };
  } finally {
    run.fetching = false;
  }
  if (resp.status === 404) return { unavailable: `the server says so: ${await errorMessage(resp)}.` };
  if (resp.status === 503) return { unreachable: await errorMessage(resp), udp: false };
  if (!resp.ok) return { error: await errorMessage(resp) };
  const { url: sessionUrl, serverCertificateHashes: hashes } = await resp.json();
  if (!run.active) return { done: true }; // stopped while asking
  const where = new URL(sessionUrl);
  const options = hashes.length
    ? { serverCertificateHashes: hashes.map(({ algorithm, value }) => ({ algorithm, value: bytesOf(value) })) }
    : {};

  const transport = new WebTransport(sessionUrl, options);
  const s = new Session(run, transport);
  run.session = s;
  run.waitWhy =
    `Waiting for the HTTP/3 handshake with ${where.host} over UDP. If it does not come, UDP ` +
    "to that port is blocked on the way, or a proxy in front of the server carries TCP only.";
  const timeout = new Promise((resolve) => setTimeout(() => resolve("timeout"), READY_TIMEOUT_MS));
  const ready = await Promise.race([transport.ready.then(() => "ready", (err) => err), timeout]);
  run.waitWhy = null;
  if (ready !== "ready") {
    s.close();
    if (!run.active) return { done: true };
    const why = ready === "timeout" ? `no answer within ${READY_TIMEOUT_MS / 1000} s` : ready.message;
    return {
      unreachable:
        `no HTTP/3 session with ${where.host} over UDP (${why}): UDP to that port may be ` +
        "blocked on the way, or a proxy in front of the server carries TCP only.",
      udp: true,
    };
  }
  s.open = true;
  run.encoding = "identity"; // WebTransport compresses nothing
  s.watch();
  run.setState("streaming");

  try {
    const incoming = transport.incomingUnidirectionalStreams.getReader();
    const { value: stream, done: none } = await incoming.read();
    incoming.releaseLock();
    if (none) throw new Error("the session closed before its stream opened");
    const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    let partial = ""; // the start of a line whose end has not arrived yet
    const line = (text) => {
      const chunk = JSON.parse(text);
      run.chunk(chunk.index, chunk.text);
    };
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const lines = (partial + value).split("\n");
      partial = lines.pop();
      lines.forEach(line);
    }
    if (partial) line(partial); // a last line without its newline: shown, counted, not lost
    return { done: true };
  } catch (err) {
    if (!run.active) return { done: true }; // stopped: the page closed the session
    // The code comes with the stream's reset, or else with the session's close.
    const info = await closeInfo(transport, STOP_GRACE_MS);
    const code = typeof err.streamErrorCode === "number" ? err.streamErrorCode : info?.closeCode;
    s.close();
    if (code === CODES.goingAway) return { goingAway: true };
    const reason = info?.reason ? ` (${info.reason})` : "";
    if (code === CODES.stalled) return { error: `the server ended the stalled session${reason}` };
    if (code === CODES.protocolError) return { error: `the server ended the session: protocol error${reason}` };
    return { error: `the session broke: ${err.message}${code === undefined ? "" : ` (code ${code})`}` };
  }
}

/**
 * WebTransport: asks `stream/wt` where the session is, opens it, reads its chunk stream;
 * pause, resume and stop are control lines. A server going away is asked again and again,
 * RESUME_DELAY_MS apart, at most RESUME_TRIES times, and the stream resumes after the last
 * chunk received.
 */
export async function runWt(run) {
  const unavailable = (why) =>
    run.end("unavailable", `${UNAVAILABLE}: ${why} The other transports run without it.`);
  const why = missing();
  if (why) {
    unavailable(why);
    return;
  }
  run.stop = () => {
    const s = run.session;
    run.end("stopped");
    run.onEnd?.();
    if (s?.open) {
      s.send("stop"); // the server finishes the stream and closes; the page closes if it does not
      setTimeout(() => s.close(), STOP_GRACE_MS);
    } else {
      s?.close(); // still connecting: nothing to tell the server yet
    }
  };
  run.pause = () => {
    run.session?.send("pause");
    run.setState("paused");
  };
  run.resume = () => {
    run.session?.send("resume");
    run.setState("streaming");
  };

  let tries = 0; // to resume, since the server went away
  for (;;) {
    const start = run.lastIndex === null ? run.params.start : run.lastIndex + 1;
    const ended = await session(run, start);
    if (!run.active) return;
    if (ended.done) {
      run.complete();
      return;
    }
    if (ended.goingAway) {
      tries = 0;
    } else if (!(ended.unreachable && tries > 0 && tries < RESUME_TRIES)) {
      if (ended.unavailable) unavailable(ended.unavailable);
      else if (ended.unreachable && ended.udp && tries === 0) unavailable(ended.unreachable);
      else if (ended.unreachable && tries > 0) run.end("error", `the server went away and did not come back: ${ended.unreachable}`);
      else run.end("error", ended.error ?? ended.unreachable);
      return;
    }
    tries += 1;
    run.setState("reconnecting");
    await delay(run, RESUME_DELAY_MS);
    if (!run.active) return;
  }
}
