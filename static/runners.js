// chunkstream live page: how each transport's stream is read. A runner takes a `Run` (see
// app.js), opens the stream its URL names, and tells the run what happens: `setState`,
// `chunk(index, text)`, `complete()` or `end(state, message)`; it gives the run `stop`, and
// `pause` and `resume` where the transport takes control messages. WebTransport's runner is
// in webtransport.js.

/** How long a WebSocket may take to close after a `stop` before the page closes it. */
export const STOP_GRACE_MS = 2000;

/** The server's message from an error response: its JSON `error`, else its text. */
export async function errorMessage(resp) {
  let body = "";
  try {
    body = await resp.text();
    const json = JSON.parse(body);
    if (json && typeof json.error === "string") body = json.error;
  } catch (_) {
    // Not JSON: show the text as it is.
  }
  return `HTTP ${resp.status}${body ? `: ${body}` : ""}`;
}

/**
 * Why a stream that a browser API refuses to explain (EventSource, WebSocket) failed: the
 * same URL fetched plainly answers with the server's JSON error. A success is cut off at once.
 */
async function diagnose(url) {
  const abort = new AbortController();
  try {
    const resp = await fetch(url, { signal: abort.signal, cache: "no-store" });
    if (!resp.ok) return await errorMessage(resp);
    return null;
  } catch (_) {
    return null;
  } finally {
    abort.abort();
  }
}

/**
 * Fetches the run's URL and hands each line of its body to `line` as it arrives, splitting
 * across reads (a line may come in pieces); then completes the run. Text and JSON Lines read so.
 */
async function readLines(run, line) {
  run.abort = new AbortController();
  run.stop = () => {
    run.end("stopped");
    run.abort.abort();
  };
  try {
    const resp = await fetch(run.url, { signal: run.abort.signal, cache: "no-store" });
    if (!resp.ok) {
      run.end("error", await errorMessage(resp));
      return;
    }
    run.encoding = resp.headers.get("content-encoding") ?? "identity";
    run.setState("streaming");
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let partial = ""; // the start of a line whose end has not arrived yet
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const lines = (partial + decoder.decode(value, { stream: true })).split("\n");
      partial = lines.pop();
      lines.forEach(line);
    }
    partial += decoder.decode();
    if (partial) line(partial); // a last line without its newline: shown, counted, not lost
    run.complete();
  } catch (err) {
    if (run.abort.signal.aborted) return; // Stop: already ended as "stopped"
    run.end("error", `the stream broke: ${err.message}`);
    run.abort.abort(); // a line that would not parse: the rest of the body is not wanted
  }
}

/** Text: one `Data Chunk i` line per chunk. */
export function runText(run) {
  return readLines(run, (text) => {
    const m = /^Data Chunk (\d+)$/.exec(text);
    run.chunk(m ? Number(m[1]) : NaN, text);
  });
}

/** JSON Lines: one chunk's JSON per line (a line that is not JSON breaks the stream). */
export function runJsonl(run) {
  return readLines(run, (text) => {
    const chunk = JSON.parse(text);
    run.chunk(chunk.index, chunk.text);
  });
}

/**
 * SSE: EventSource, closed after the `end` event (else it would reconnect forever): once the
 * response has ended, which the `error` that follows says. A request closed before its last
 * bytes arrive (a compressed stream's trailer) is aborted, and the browser keeps no timing
 * entry for it, so the panel could not tell its bytes on the wire. A server that does not
 * end the response is not waited for past the grace.
 */
export function runSse(run) {
  const es = new EventSource(run.url);
  let ended = false;
  run.stop = () => {
    es.close();
    run.end("stopped");
  };
  es.addEventListener("open", () => run.setState("streaming"));
  es.addEventListener("chunk", (e) => {
    const chunk = JSON.parse(e.data);
    run.chunk(chunk.index, chunk.text);
  });
  es.addEventListener("end", () => {
    ended = true;
    run.complete();
    setTimeout(() => es.close(), STOP_GRACE_MS);
  });
  es.addEventListener("error", async () => {
    if (ended) {
      es.close(); // the response ended: no reconnecting
      return;
    }
    if (es.readyState !== EventSource.CLOSED) {
      // The browser reconnects by itself, sending Last-Event-ID: the stream resumes.
      run.setState("reconnecting");
      return;
    }
    // Closed for good: a non-200 answer. A 204 after every chunk arrived means the `end`
    // event was lost on the way (a proxy cut between the last chunk and it): done.
    if (run.expected !== null && run.received === run.expected) {
      run.complete();
      return;
    }
    // Otherwise a 400 (or a 204 for a stream resumed past its end): ask for the message.
    const message = await diagnose(run.url);
    run.end("error", message ?? "the event stream failed");
  });
}

/** WebSocket: one text frame per chunk; pause, resume and stop are control messages. */
export function runWs(run) {
  const url = new URL(run.url);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(url);
  let opened = false;
  const send = (action) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ action }));
  };
  run.pause = () => {
    send("pause");
    run.setState("paused");
  };
  run.resume = () => {
    send("resume");
    run.setState("streaming");
  };
  run.stop = () => {
    run.stopping = true;
    if (ws.readyState === WebSocket.OPEN) {
      send("stop"); // the server closes with 1000; the page closes it if it does not
      setTimeout(() => ws.close(), STOP_GRACE_MS);
    } else {
      ws.close(); // still connecting: nothing to tell the server yet
    }
    run.end("stopped");
  };
  ws.addEventListener("open", () => {
    opened = true;
    // `permessage-deflate; client_no_context_takeover` (or ""): the extension's name says it.
    run.encoding = ws.extensions ? ws.extensions.split(";")[0].trim() : "identity";
    run.setState("streaming");
  });
  ws.addEventListener("message", (e) => {
    const msg = JSON.parse(e.data);
    if (typeof msg.error === "string") {
      run.panel.showError(`server: ${msg.error}`); // the stream goes on
    } else {
      run.chunk(msg.index, msg.text);
    }
  });
  ws.addEventListener("close", async (e) => {
    if (run.stopping) return;
    if (!opened) {
      // The upgrade was refused; the browser hides the answer, so ask for it again.
      const message = await diagnose(run.url);
      run.end("error", message ?? `the WebSocket was refused (close code ${e.code})`);
    } else if (e.code === 1000) {
      run.complete();
    } else {
      run.end("error", `the WebSocket closed with code ${e.code}${e.reason ? ` (${e.reason})` : ""}`);
    }
  });
}
