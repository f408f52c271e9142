// A Swagger UI plugin that makes "Execute" stream, with no build step: plain JavaScript and
// Swagger UI's own React (`system.React`).
//
// Swagger UI reads a whole response before it shows anything, so on its own a stream shows
// nothing until it ends, cannot be stopped, and a WebSocket cannot be tried at all. This
// plugin hooks into the one place every "Execute" goes through, the `executeRequest` action
// of the `spec` plugin, and hands swagger-client a `fetch` of its own (`userFetch`) and an
// `AbortSignal`, so that Swagger UI still builds the request, validates the parameters and
// records request and response as usual:
// - For a response whose body is a stream (`text/event-stream`, `application/jsonl`, or any
//   `text/*` body of unknown length), the fetch hands Swagger UI the status and headers at
//   once and reads the body itself, item by item, into a view that replaces the response
//   body (a wrapped `responseBody` component): SSE as a table of events (name, id, data),
//   JSON Lines one object per line, text line by line. Stop aborts the fetch, which closes
//   the connection, and the server ends the stream.
// - Any other response (an error, a 204, a short body) goes back to Swagger UI untouched,
//   and is shown as Swagger UI shows it.
// - An operation documented with a `101` response is a WebSocket: the fetch opens a
//   WebSocket on the request's URL (`ws:`/`wss:` by the page's scheme), shows each message,
//   sends the control messages of Pause, Resume and Stop, and shows the close code and reason.
// It also shows what each item of a stream looks like: a response whose media type has an
// OpenAPI 3.2 `itemSchema` gets a row "Each event" / "Each line" with its schema and an
// example (a wrapped `response` component), which Swagger UI does not render by itself.
(function () {
  "use strict";

  /** Items kept on the page per stream: a stream of millions keeps the page light. */
  const KEEP = 100;

  /** Media types whose items are JSON values, one per line. */
  const JSON_LINES = /^application\/(jsonl|x-ndjson)\b/i;

  /** What each kind of stream calls its items. */
  const NOUNS = {
    sse: ["event", "events"],
    jsonl: ["line", "lines"],
    text: ["line", "lines"],
    ws: ["message", "messages"],
  };

  /**
   * One stream run from the docs: its state and its last items, with the views that show it.
   * Views re-render at most once per animation frame, however fast items arrive.
   */
  class Stream {
    constructor(kind, url) {
      Stream.count = (Stream.count || 0) + 1;
      /** Tells this stream's view from an earlier one's of the same URL. */
      this.id = Stream.count;
      this.kind = kind;
      this.url = url;
      this.state = "streaming";
      this.detail = "";
      this.items = [];
      this.received = 0;
      this.sequence = 0;
      this.started = performance.now();
      this.firstMs = null;
      this.elapsedMs = null;
      this.retry = null;
      this.stop = () => {};
      this.controls = null;
      this.listeners = new Set();
      this.frame = 0;
    }

    /** Adds an item: one the server sent, or (a WebSocket's) one the page `sent`. */
    push(item) {
      this.sequence += 1;
      if (!item.sent) this.received += 1;
      if (this.firstMs === null && !item.sent) this.firstMs = performance.now() - this.started;
      this.items.push({ ...item, n: this.sequence });
      if (this.items.length > KEEP) this.items.shift();
      this.changed();
    }

    /** Ends the stream in `state` (`done`, `stopped`, `closed`, `error`), once. */
    end(state, detail) {
      if (!this.running()) return;
      this.state = state;
      this.detail = detail || "";
      this.elapsedMs = performance.now() - this.started;
      this.changed();
    }

    running() {
      return this.state === "streaming" || this.state === "paused";
    }

    changed() {
      if (this.frame) return;
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        for (const listener of this.listeners) listener();
      });
    }
  }

  /** The streams on the page, by request URL: the response body's view finds its own. */
  const streams = new Map();
  /** The running stream of each operation (`get /stream/sse`), to end it on a new Execute. */
  const running = new Map();

  /** Ends the stream of operation `key`, if one runs, and forgets its view. */
  function release(key) {
    const stream = running.get(key);
    if (!stream) return;
    running.delete(key);
    streams.delete(stream.url);
    stream.stop();
  }

  function register(key, stream) {
    streams.set(stream.url, stream);
    running.set(key, stream);
  }

  /** Which kind of stream a response's body is, or `null` to leave it to Swagger UI. */
  function streamKind(response) {
    if (!response.ok || !response.body || response.status === 204) return null;
    const type = response.headers.get("content-type") || "";
    if (/^text\/event-stream\b/i.test(type)) return "sse";
    if (JSON_LINES.test(type)) return "jsonl";
    // A text body of unknown length is written as it is made: read it as it comes.
    if (/^text\//i.test(type) && !response.headers.has("content-length")) return "text";
    return null;
  }

  /** A `fetch` for swagger-client that streams the body of a streaming response. */
  function streamingFetch(key, controller) {
    return async (url, init) => {
      const response = await fetch(url, init);
      const kind = streamKind(response);
      if (!kind) return response;
      const stream = new Stream(kind, url);
      stream.stop = () => {
        stream.stopping = true;
        controller.abort();
      };
      register(key, stream);
      read(stream, response.body);
      // Swagger UI gets the status and headers now; the body is the view's to show.
      return new Response(`(${NOUNS[kind][1]} below)`, {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
      });
    };
  }

  /** Reads `body` into `stream`, parsed by its kind, until it ends or is stopped. */
  async function read(stream, body) {
    const parse = PARSERS[stream.kind]((item) => stream.push(item), stream);
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parse.push(value);
      }
      parse.end();
      stream.end("done");
    } catch (err) {
      if (stream.stopping) stream.end("stopped");
      else stream.end("error", `the connection broke: ${err.message || err}`);
    }
  }

  /**
   * Calls `onLine` with each line of the text pushed in (ended by LF, CR or CRLF), and with
   * an unfinished last line at the end if `keepLast`.
   */
  function lineSplitter(onLine, keepLast) {
    let buffer = "";
    return {
      push(text) {
        buffer += text;
        let start = 0;
        for (let i = 0; i < buffer.length; i += 1) {
          const c = buffer.charCodeAt(i);
          if (c !== 10 && c !== 13) continue;
          // A CR at the very end may be the first half of a CRLF: wait for the next text.
          if (c === 13 && i + 1 === buffer.length) break;
          onLine(buffer.slice(start, i));
          if (c === 13 && buffer.charCodeAt(i + 1) === 10) i += 1;
          start = i + 1;
        }
        buffer = buffer.slice(start);
      },
      end() {
        const rest = buffer.replace(/\r$/, "");
        buffer = "";
        if (rest && keepLast) onLine(rest);
      },
    };
  }

  /** A readable one-line form of a JSON value: `{ "index": 0, "text": "Data Chunk 0" }`. */
  function readable(value) {
    return JSON.stringify(value, null, 1).replace(/\n\s*/g, " ");
  }

  /** `text` as JSON if it is, for the items that carry JSON. */
  function jsonOf(text) {
    try {
      return { json: JSON.parse(text) };
    } catch (err) {
      return { invalid: err.message };
    }
  }

  const PARSERS = {
    text: (emit) => lineSplitter((line) => emit({ text: line }), true),

    jsonl: (emit) =>
      lineSplitter((line) => {
        if (line.trim() === "") return;
        emit({ text: line, ...jsonOf(line) });
      }, true),

    // The event-stream parsing of the HTML standard ("Interpreting an event stream"), with
    // each event's fields as its block sent them (an event without `id:` shows none).
    sse: (emit, stream) => {
      let data = [];
      let event = "";
      let id = null;
      let retry = null;
      const dispatch = () => {
        if (data.length > 0) {
          const text = data.join("\n");
          emit({ event: event || "message", id, retry, text, ...jsonOf(text) });
        }
        data = [];
        event = "";
        id = null;
        retry = null;
      };
      return lineSplitter((line) => {
        if (line === "") return dispatch();
        if (line.startsWith(":")) return undefined; // a comment: a keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "event") event = value;
        else if (field === "id" && !value.includes("\0")) id = value;
        else if (field === "retry" && /^\d+$/.test(value)) {
          retry = Number(value);
          stream.retry = retry;
        }
        return undefined;
      }, false);
    },
  };

  /** `ws:` or `wss:` for an `http:` or `https:` URL, as the page's own scheme has it. */
  function webSocketUrl(httpUrl) {
    const url = new URL(httpUrl, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  /**
   * A `fetch` for swagger-client that opens a WebSocket instead: it answers, once the socket
   * is open, with the `101` that opened it (a stand-in with what Swagger UI reads of a
   * response), and fails if the socket closes before it opens.
   */
  function webSocketFetch(key, signal) {
    return (httpUrl) =>
      new Promise((resolve, reject) => {
        const url = webSocketUrl(httpUrl);
        const stream = new Stream("ws", httpUrl);
        stream.socketUrl = url;
        stream.state = "connecting";
        let socket;
        try {
          socket = new WebSocket(url);
        } catch (err) {
          reject(err);
          return;
        }
        const send = (action) => {
          if (socket.readyState !== WebSocket.OPEN) return;
          const message = JSON.stringify({ action });
          socket.send(message);
          stream.push({ sent: true, text: message });
          if (action === "pause") stream.state = "paused";
          if (action === "resume") stream.state = "streaming";
          stream.changed();
        };
        stream.controls = {
          pause: () => send("pause"),
          resume: () => send("resume"),
          stop: () => send("stop"),
        };
        stream.stop = () => socket.close(1000, "closed from the docs");
        signal.addEventListener("abort", () => stream.stop());
        socket.onopen = () => {
          stream.state = "streaming";
          stream.started = performance.now();
          register(key, stream);
          // A browser shows a page no header of the handshake: none are shown.
          resolve({
            ok: true,
            status: 101,
            statusText: "Switching Protocols",
            url,
            headers: new Headers(),
            blob: async () => new Blob([`(${NOUNS.ws[1]} below)`]),
          });
        };
        socket.onmessage = (e) => {
          const text = typeof e.data === "string" ? e.data : "(a binary message)";
          stream.push({ text, ...jsonOf(text) });
        };
        socket.onclose = (e) => {
          const how = `close code ${e.code}${e.reason ? `, reason "${e.reason}"` : ""}`;
          if (stream.state === "connecting") {
            stream.state = "closed";
            // The browser never shows a refused upgrade's answer to the page.
            reject(
              new Error(
                `the WebSocket closed before it opened (${how}). The server refuses an ` +
                  "upgrade with 400 for `start` past `count`, 403 for a foreign Origin, 429 or " +
                  "503 at its limits; a browser does not tell which.",
              ),
            );
            return;
          }
          stream.code = e.code;
          stream.reason = e.reason;
          stream.end(e.code === 1000 ? "closed" : "error", how);
        };
      });
  }

  /** Whether an operation (Swagger UI's Immutable map) is documented as a WebSocket. */
  function isWebSocket(operation) {
    return Boolean(operation && operation.getIn && operation.getIn(["responses", "101"]));
  }

  /**
   * An example event (the JSON a sample of its schema gives) as a server writes it on the
   * wire, one `field: value` line each; `null` if the sample is no such object.
   */
  function eventOnTheWire(sample) {
    let event;
    try {
      event = typeof sample === "string" ? JSON.parse(sample) : sample;
    } catch (err) {
      return null;
    }
    if (!event || typeof event !== "object" || Array.isArray(event)) return null;
    const lines = Object.entries(event)
      .filter(([, value]) => typeof value === "string" || typeof value === "number")
      .flatMap(([field, value]) => String(value).split("\n").map((line) => `${field}: ${line}`));
    return lines.length > 0 ? `${lines.join("\n")}\n\n` : null;
  }

  /** An example JSON value (as a sample of its schema gives it) as one JSON line. */
  function lineOnTheWire(sample) {
    try {
      return `${JSON.stringify(typeof sample === "string" ? JSON.parse(sample) : sample)}\n`;
    } catch (err) {
      return null;
    }
  }

  /** What the status line says of a stream. */
  function summary(stream) {
    const [one, many] = NOUNS[stream.kind];
    const count = `${stream.received.toLocaleString("en")} ${stream.received === 1 ? one : many}`;
    const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
    switch (stream.state) {
      case "connecting":
        return "Connecting…";
      case "streaming":
        return `Streaming: ${count} so far`;
      case "paused":
        return `Paused after ${count}`;
      case "done":
        return `Done: ${count} in ${secs(stream.elapsedMs)}`;
      case "stopped":
        return `Stopped after ${count} (${secs(stream.elapsedMs)})`;
      case "closed":
        return `Closed (${stream.detail}) after ${count} in ${secs(stream.elapsedMs)}`;
      default:
        return `Error after ${count}: ${stream.detail}`;
    }
  }

  /** The React components, made once with Swagger UI's React. */
  function components(React) {
    const h = React.createElement;

    /** A chunk's index, when an item is one: the tests and the eye follow it. */
    const indexOf = (item) =>
      item.json && typeof item.json.index === "number" ? String(item.json.index) : undefined;

    const shown = (item) => (item.json !== undefined ? readable(item.json) : item.text);

    function Events({ items }) {
      return h(
        "table",
        { className: "cs-events" },
        h("caption", { className: "cs-visually-hidden" }, "Events received, oldest first"),
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            h("th", { scope: "col" }, "#"),
            h("th", { scope: "col" }, "event"),
            h("th", { scope: "col" }, "id"),
            h("th", { scope: "col" }, "data"),
          ),
        ),
        h(
          "tbody",
          null,
          items.map((item) =>
            h(
              "tr",
              {
                key: item.n,
                className: "cs-item",
                "data-index": indexOf(item),
                "data-event": item.event,
                "data-id": item.id === null ? undefined : item.id,
              },
              h("td", { className: "cs-n" }, item.n),
              h(
                "td",
                null,
                h("span", { className: "cs-event-name" }, item.event),
                item.retry === null
                  ? null
                  : h("span", { className: "cs-retry" }, ` retry ${item.retry} ms`),
              ),
              h("td", null, item.id === null ? "–" : item.id),
              h("td", null, h("code", null, shown(item))),
            ),
          ),
        ),
      );
    }

    function Lines({ items, kind }) {
      return h(
        "ol",
        { className: "cs-lines", "aria-label": `${NOUNS[kind][1]} received, oldest first` },
        items.map((item) =>
          h(
            "li",
            {
              key: item.n,
              value: item.n,
              className: ["cs-item", item.sent && "cs-sent", item.invalid && "cs-invalid"]
                .filter(Boolean)
                .join(" "),
              "data-index": indexOf(item),
            },
            item.sent ? h("span", { className: "cs-direction" }, "sent ") : null,
            h("code", null, shown(item)),
            item.invalid ? h("span", { className: "cs-note" }, " (not JSON)") : null,
          ),
        ),
      );
    }

    class StreamView extends React.Component {
      constructor(props) {
        super(props);
        this.list = React.createRef();
        this.follow = true;
        this.update = () => this.forceUpdate();
        this.onScroll = () => {
          const el = this.list.current;
          if (el) this.follow = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
        };
      }

      componentDidMount() {
        this.props.stream.listeners.add(this.update);
        this.scrollDown();
      }

      componentWillUnmount() {
        this.props.stream.listeners.delete(this.update);
      }

      componentDidUpdate() {
        this.scrollDown();
      }

      scrollDown() {
        const el = this.list.current;
        if (el && this.follow) el.scrollTop = el.scrollHeight;
      }

      render() {
        const { stream } = this.props;
        const live = stream.running();
        const button = (label, onClick, enabled, extra) =>
          h(
            "button",
            { type: "button", className: `btn cs-button ${extra}`, onClick, disabled: !enabled },
            label,
          );
        const ws = stream.controls;
        const [, many] = NOUNS[stream.kind];
        const hidden = stream.sequence - stream.items.length;
        return h(
          "div",
          {
            className: "cs-stream",
            "data-kind": stream.kind,
            "data-state": stream.state,
            "data-received": stream.received,
          },
          h(
            "h5",
            null,
            ws ? `Messages of the WebSocket ${stream.socketUrl}` : "Response body, as it arrives",
          ),
          h(
            "div",
            { className: "cs-toolbar" },
            h("span", { className: "cs-summary" }, summary(stream)),
            // Announced when the state changes, not with every item.
            h("span", { className: "cs-visually-hidden", role: "status" }, stream.state),
            ws
              ? button("Pause", ws.pause, stream.state === "streaming", "cs-pause")
              : null,
            ws ? button("Resume", ws.resume, stream.state === "paused", "cs-resume") : null,
            button(
              ws ? "Stop" : "Stop stream",
              ws ? ws.stop : () => stream.stop(),
              live,
              "cs-stop",
            ),
          ),
          h(
            "div",
            {
              className: "cs-items",
              ref: this.list,
              onScroll: this.onScroll,
              tabIndex: 0,
              role: "region",
              "aria-label": `${many} received`,
            },
            stream.kind === "sse"
              ? h(Events, { items: stream.items })
              : h(Lines, { items: stream.items, kind: stream.kind }),
          ),
          hidden > 0
            ? h(
                "p",
                { className: "cs-note" },
                `Showing the last ${stream.items.length} of ` +
                  `${stream.sequence.toLocaleString("en")} ` +
                  `${ws ? "messages, sent and received" : many}.`,
              )
            : null,
        );
      }
    }

    /** The `itemSchema` of a response's media types, shown under the response's row. */
    function ItemSchemas({ response, specPath, getComponent, getConfigs, specSelectors, fn }) {
      const ModelExample = getComponent("modelExample", true);
      const HighlightCode = getComponent("HighlightCode", true);
      const content = response.get("content");
      const rows = [];
      content.forEach((mediaType, type) => {
        const itemSchema = mediaType && mediaType.get && mediaType.get("itemSchema");
        if (!itemSchema || !itemSchema.toJS) return;
        const noun = /event-stream/i.test(type) ? "event" : JSON_LINES.test(type) ? "line" : "item";
        let sample = null;
        try {
          sample = fn.getSampleSchema(itemSchema.toJS(), "application/json", {
            includeReadOnly: true,
          });
        } catch (err) {
          sample = null;
        }
        // The document's own serialized example of the stream, or one item written out.
        const serialized = mediaType.get("example");
        const wire =
          typeof serialized === "string"
            ? serialized
            : noun === "event"
              ? eventOnTheWire(sample)
              : noun === "line"
                ? lineOnTheWire(sample)
                : null;
        rows.push(
          h(
            "div",
            { key: type, className: "cs-item-schema", "data-media-type": type },
            h(
              "h5",
              null,
              `Each ${noun} of `,
              h("code", null, type),
              ` (OpenAPI 3.2 `,
              h("code", null, "itemSchema"),
              ")",
            ),
            h(ModelExample, {
              specPath: specPath.push("content", type, "itemSchema"),
              getComponent,
              getConfigs,
              specSelectors,
              schema: itemSchema,
              example: sample
                ? h(HighlightCode, { className: "example", language: "json" }, sample)
                : null,
              includeReadOnly: true,
            }),
            wire ? h("p", { className: "cs-wire-title" }, "As sent:") : null,
            wire ? h("pre", { className: "cs-wire" }, wire) : null,
          ),
        );
      });
      if (rows.length === 0) return null;
      return h(
        "tr",
        { className: "response cs-item-schemas" },
        h("td", { className: "response-col_status" }),
        h("td", { className: "response-col_description" }, rows),
        specSelectors.isOAS3() ? h("td", { className: "response-col_links" }) : null,
      );
    }

    return { StreamView, ItemSchemas };
  }

  /** The plugin: Swagger UI calls it with its system. */
  function chunkstreamStreaming(system) {
    const React = system.React;
    const { StreamView, ItemSchemas } = components(React);
    const h = React.createElement;
    return {
      statePlugins: {
        spec: {
          wrapActions: {
            executeRequest: (ori) => (req) => {
              const key = `${req.method} ${req.pathName}`;
              release(key);
              const controller = new AbortController();
              const userFetch = isWebSocket(req.operation)
                ? webSocketFetch(key, controller.signal)
                : streamingFetch(key, controller);
              return ori({ ...req, signal: controller.signal, userFetch });
            },
            clearResponse: (ori) => (path, method) => {
              release(`${method} ${path}`);
              return ori(path, method);
            },
          },
        },
      },
      wrapComponents: {
        responseBody: (Original) => (props) => {
          const stream = streams.get(props.url);
          return stream ? h(StreamView, { stream, key: stream.id }) : h(Original, props);
        },
        response: (Original) => (props) => {
          const content = props.response && props.response.get && props.response.get("content");
          const streamed = (m) => Boolean(m && m.get && m.get("itemSchema"));
          if (!content || !content.some || !content.some(streamed)) return h(Original, props);
          // Swagger UI would show a stream's serialized example (JSON Lines: one text) as a
          // JSON string; the item row shows it as sent, and Swagger UI an example of the
          // stream's JSON model (an array of items) made from its schema.
          let response = props.response;
          content.forEach((m, type) => {
            if (streamed(m) && typeof m.get("example") === "string") {
              response = response.deleteIn(["content", type, "example"]);
            }
          });
          return h(
            React.Fragment,
            null,
            h(Original, { ...props, response }),
            h(ItemSchemas, props),
          );
        },
      },
    };
  }

  window.chunkstreamStreaming = chunkstreamStreaming;
})();
