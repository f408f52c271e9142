// chunkstream live page: one generator, read over five transports, rendered as it arrives.
// This file holds the panels, the runs and the form; runners.js and webtransport.js read
// the streams, chart.js draws the chart.
//
// Every URL is relative to the page (`stream?…`, `stream/sse?…`, `stream/jsonl?…`,
// `stream/wt?…`, a WebSocket URL built from `location`), so the page works on any host and
// port and behind a reverse proxy under any prefix. (The WebTransport session itself goes
// where `stream/wt` says: the server's UDP port, which no HTTP proxy carries.)
//
// Each panel exposes its state on its element for tests and curious readers:
//   data-state     idle | connecting | streaming | paused | reconnecting | done | stopped | error
//                  | unavailable (WebTransport: this browser, server or network has none)
//   data-count     chunks received
//   data-last      index of the last chunk received
//   data-in-order  "true" while every chunk was the one after its predecessor
//   data-protocol  h2 | http/1.1 | … (Resource Timing's nextHopProtocol) | http/1.1 upgrade | h3
//   data-encoding  identity | gzip | permessage-deflate | compressed (what the browser tells)
//   data-waiting   "true" while the panel explains why its stream waits for a connection
//                  (or, WebTransport, for its HTTP/3 handshake)
// and `window.chunkstreamChart.read()` returns what the chart drew last (see chart.js).
// `?chart=off` in the page's URL leaves the chart out, to measure what it costs.

import { Chart, swatch } from "./chart.js";
import { runJsonl, runSse, runText, runWs } from "./runners.js";
import { runWt } from "./webtransport.js";

/** How many chunks each panel keeps in the DOM: a stream of 10 million stays 50 nodes. */
const SHOWN = 50;
/** How often the clock-driven figures (elapsed, chunks/s) and the chart refresh, in ms. */
const TICK_MS = 250;
/** How many times, TICK_MS apart, a panel looks for its ended stream's timing entry. */
const ENTRY_TRIES = 40;
/** How long a stream may wait for a connection before the panel says why. */
const WAIT_EXPLAINED_AFTER_MS = 2000;
/** Connections a browser opens to one site over HTTP/1.1 (all of them: Chromium, Firefox, Safari). */
const HTTP1_CONNECTIONS_PER_SITE = 6;

/**
 * The page's transports, in the order of their panels. The transport choices, the panels,
 * the race and the chart are all made from this list: a transport is one entry here and its
 * runner. Each colour keeps the contrast WCAG asks of graphics (3:1) against the chart's
 * background in both colour schemes, and each dash tells the lines apart without colour.
 * `http`: the stream is an HTTP response, which holds one of the browser's connections to the
 * site for as long as it lasts over HTTP/1.1 (a WebSocket and a WebTransport session have
 * connections of their own); otherwise `protocol` is what the browser knows of the protocol.
 * `control`: the stream takes pause and resume messages (the Pause and Resume buttons).
 */
const TRANSPORTS = [
  { name: "text", label: "Text", api: "fetch", route: "stream", http: true, colour: "#2b7bd0", dash: "", runner: runText },
  { name: "sse", label: "SSE", api: "EventSource", route: "stream/sse", http: true, colour: "#d2572b", dash: "9 4", runner: runSse },
  { name: "ws", label: "WebSocket", api: null, route: "stream/ws", http: false, protocol: "http/1.1 upgrade", control: true, colour: "#0e8a63", dash: "2 5", runner: runWs },
  { name: "jsonl", label: "JSON Lines", api: "fetch", route: "stream/jsonl", http: true, colour: "#9b59d0", dash: "8 3 2 3", runner: runJsonl },
  { name: "wt", label: "WebTransport", api: null, route: "stream/wt", http: false, protocol: "h3", control: true, colour: "#c2418a", dash: "12 3 2 3 2 3", runner: runWt },
];

/**
 * The protocol a stream of this page uses: its Resource Timing entry's `nextHopProtocol`
 * (`h2`, `http/1.1`, `h3`). A browser records a fetch's or an EventSource's entry only once
 * its response has ended, so until then it is the page's: the page and its streams come from
 * one origin over one protocol, and over HTTP/2 one connection carries them all. A WebSocket
 * has no entry; what the browser knows is that it began as an HTTP/1.1 upgrade (the server
 * and nginx upgrade nothing else). A WebTransport session is HTTP/3 (`h3`) by definition.
 */
function protocolOf(run) {
  if (!run.panel.transport.http) return run.panel.transport.protocol;
  return ownEntry(run)?.nextHopProtocol || pageProtocol();
}

/** The stream's own Resource Timing entry, once its response has ended. */
function ownEntry(run) {
  return performance
    .getEntriesByName(run.url.href, "resource")
    .filter((e) => e.startTime >= run.startedAt)
    .pop();
}

/**
 * How the stream's bytes travel, as far as the browser tells: the response's
 * `Content-Encoding` (fetch), the WebSocket's negotiated extensions, or, for an EventSource,
 * which shows no headers, whether its timing entry counted fewer bytes on the wire than
 * decoded. And the bytes on the wire, where Resource Timing counts them (once the response
 * has ended; a WebSocket's are never counted), or where the runner tells them (`run.wire`:
 * a WebTransport session's statistics).
 */
function encodingOf(run) {
  const entry = run.panel.transport.http ? ownEntry(run) : null;
  let encoding = run.encoding;
  if (encoding === null && entry && entry.decodedBodySize > 0) {
    encoding = entry.encodedBodySize < entry.decodedBodySize ? "compressed" : "identity";
  }
  let wire;
  if (!run.panel.transport.http) wire = run.wire ?? "not counted by the browser";
  else if (entry && entry.decodedBodySize > 0) {
    const kb = (bytes) => `${(bytes / 1024).toLocaleString("en", { maximumFractionDigits: 1 })} KiB`;
    wire = `${kb(entry.encodedBodySize)} (${kb(entry.decodedBodySize)} decoded)`;
  } else wire = run.active ? "when it ends" : "–";
  return { encoding: encoding ?? (run.active ? "not shown yet" : "not shown"), wire };
}

/**
 * The protocol this page's origin answers in: the latest timing entry of the origin that
 * names one. A response from the browser's cache names none (a reloaded page, its script),
 * hence the probe below; and until it is answered, a page over plain `http:` is HTTP/1.1 all
 * the same (browsers speak HTTP/2 and HTTP/3 only over TLS).
 */
function pageProtocol() {
  const entries = [
    ...performance.getEntriesByType("navigation"),
    ...performance.getEntriesByType("resource"),
  ];
  const named = entries
    .filter((e) => e.nextHopProtocol && new URL(e.name).origin === location.origin)
    .pop();
  if (named) return named.nextHopProtocol;
  return location.protocol === "http:" ? "http/1.1" : "unknown";
}

// The probe: the page itself asked for again past the cache, headers only, so that its timing
// entry names the protocol even when the page came from the cache.
fetch(location.href, { method: "HEAD", cache: "no-store" }).catch(() => {});

// Entries past the buffer's size (250 by default) are dropped: long sessions start anew.
performance.addEventListener("resourcetimingbufferfull", () => performance.clearResourceTimings());

/** Why a stream is still connecting, over HTTP/1.1: the page's share of the six connections. */
function waitReason(held) {
  const cap = HTTP1_CONNECTIONS_PER_SITE;
  const page =
    held >= cap
      ? `This page holds ${held} open streams.`
      : `This page holds ${held} open stream${held === 1 ? "" : "s"}; other tabs or pages of this site hold the rest.`;
  return (
    `Waiting for a connection: over HTTP/1.1 a browser opens at most ${cap} connections ` +
    `per site, and each open stream holds one for as long as it lasts. ${page} ` +
    "HTTP/2 (the HTTPS listener of deploy/nginx.conf) carries every stream over one connection."
  );
}

/** One panel: the figures and the last chunks of one transport. */
class Panel {
  /** Makes the panel of `transport` (an entry of TRANSPORTS) from the page's template. */
  constructor(transport) {
    this.transport = transport;
    this.el = document.getElementById("panel").content.firstElementChild.cloneNode(true);
    this.el.id = `panel-${transport.name}`;
    this.el.dataset.transport = transport.name;
    this.el.setAttribute("aria-labelledby", `title-${transport.name}`);
    const $ = (sel) => this.el.querySelector(sel);
    const title = $("h2");
    title.id = `title-${transport.name}`;
    title.prepend(swatch(transport), transport.label);
    $(".route").textContent = `GET ${transport.route}`;
    this.stateEl = $(".state");
    this.receivedEl = $(".received");
    this.rateEl = $(".rate");
    this.firstEl = $(".first");
    this.elapsedEl = $(".elapsed");
    this.protocolEl = $(".protocol");
    this.encodingEl = $(".encoding");
    this.wireEl = $(".wire");
    this.waitEl = $(".wait");
    this.errorEl = $(".error");
    this.listEl = $(".chunks");
    this.run = null;
  }

  /** Forgets the previous run and shows an empty panel. */
  reset(run) {
    this.run = run;
    this.pending = [];
    this.renderQueued = false;
    this.listEl.replaceChildren();
    this.errorEl.hidden = true;
    this.errorEl.textContent = "";
    this.el.dataset.count = "0";
    this.el.dataset.inOrder = "true";
    delete this.el.dataset.last;
    delete this.el.dataset.firstMs;
    this.receivedEl.textContent = "0";
    this.rateEl.textContent = "–";
    this.firstEl.textContent = "–";
    this.elapsedEl.textContent = "–";
    this.showWait(null);
    this.showProtocol();
  }

  setState(state) {
    this.el.dataset.state = state;
    this.stateEl.textContent = state === "connecting" ? "connecting…" : state;
  }

  showError(message) {
    this.errorEl.textContent = message;
    this.errorEl.hidden = false;
  }

  /** Says why the stream waits for a connection, or (`null`) says nothing. */
  showWait(reason) {
    const text = reason ?? "";
    // Written only when it changes: the element is a live region, read out on each change.
    if (this.waitEl.textContent !== text) this.waitEl.textContent = text;
    if (reason === null) delete this.el.dataset.waiting;
    else this.el.dataset.waiting = "true";
  }

  showProtocol() {
    const protocol = this.run ? protocolOf(this.run) : "–";
    if (this.protocolEl.textContent !== protocol) this.protocolEl.textContent = protocol;
    if (this.run) this.el.dataset.protocol = protocol;
    const { encoding, wire } = this.run ? encodingOf(this.run) : { encoding: "–", wire: "–" };
    if (this.encodingEl.textContent !== encoding) this.encodingEl.textContent = encoding;
    if (this.wireEl.textContent !== wire) this.wireEl.textContent = wire;
    if (this.run) this.el.dataset.encoding = encoding;
  }

  /** Queues a chunk for the next frame; only the last SHOWN are ever kept. */
  queue(index, text) {
    this.pending.push([index, text]);
    if (this.pending.length > SHOWN) this.pending.splice(0, this.pending.length - SHOWN);
    if (!this.renderQueued) {
      this.renderQueued = true;
      requestAnimationFrame(() => this.render());
    }
  }

  /** Writes the queued chunks and the counters: at most once a frame, however fast chunks come. */
  render() {
    this.renderQueued = false;
    const run = this.run;
    if (!run) return;
    const items = this.pending.map(([index, text]) => {
      const li = document.createElement("li");
      li.dataset.index = String(index);
      li.textContent = text;
      return li;
    });
    this.pending = [];
    this.listEl.append(...items);
    const excess = this.listEl.childElementCount - SHOWN;
    for (let i = 0; i < excess; i++) this.listEl.firstElementChild.remove();
    this.listEl.scrollTop = this.listEl.scrollHeight; // newest in view
    this.el.dataset.count = String(run.received);
    this.el.dataset.inOrder = String(run.inOrder);
    if (run.lastIndex !== null) this.el.dataset.last = String(run.lastIndex);
    this.receivedEl.textContent = run.received.toLocaleString("en");
    if (run.firstMs !== null) {
      this.el.dataset.firstMs = String(run.firstMs);
      this.firstEl.textContent = `${run.firstMs} ms`;
    }
    this.tick();
  }

  /** Refreshes the figures that depend on the clock. */
  tick() {
    const run = this.run;
    if (!run) return;
    this.showProtocol();
    this.showWait(run.waitReason());
    const seconds = ((run.endedAt ?? performance.now()) - run.startedAt) / 1000;
    this.elapsedEl.textContent = `${seconds.toFixed(1)} s`;
    const rate = seconds > 0 ? run.received / seconds : null;
    this.rateEl.textContent =
      rate === null ? "–" : rate.toLocaleString("en", { maximumFractionDigits: rate < 100 ? 1 : 0 });
  }
}

/** One stream over one transport, from Start to done, stopped or error. */
class Run {
  constructor(panel, params) {
    this.panel = panel;
    this.params = params;
    this.expected = params.expected; // chunks the parameters ask for, when known
    this.received = 0;
    this.lastIndex = null;
    this.inOrder = true;
    this.firstMs = null;
    /** The stream's URL, relative to the page (so under any prefix a proxy adds). */
    this.url = new URL(`${panel.transport.route}?${params.query}`, location.href);
    this.startedAt = performance.now();
    this.endedAt = null;
    /** The encoding the browser told (a header, the WebSocket's extensions); null: not told. */
    this.encoding = null;
    /** The bytes on the wire as the runner tells them, when Resource Timing does not; null: not told. */
    this.wire = null;
    /** Why the stream waits, as its runner tells it, when it is no HTTP stream; null: nothing said. */
    this.waitWhy = null;
    /** The runner waits for an HTTP response before its stream (WebTransport: `stream/wt`). */
    this.fetching = false;
    this.stopping = false;
    this.state = "connecting";
    panel.reset(this);
    panel.setState("connecting");
  }

  get current() {
    return this.panel.run === this;
  }

  /**
   * Why this run still waits for its stream, in words, or `null`: only a run connecting for
   * longer than WAIT_EXPLAINED_AFTER_MS, if it waits for an HTTP response over HTTP/1.1 (its
   * stream's, or the one its runner asked for first: `fetching`), or if its runner says why
   * (`waitWhy`: a WebTransport handshake).
   */
  waitReason() {
    const waiting =
      this.active &&
      this.state === "connecting" &&
      performance.now() - this.startedAt > WAIT_EXPLAINED_AFTER_MS;
    if (!waiting) return null;
    const http = this.panel.transport.http;
    if (!http && !this.fetching) return this.waitWhy ?? null;
    const protocol = http ? protocolOf(this) : pageProtocol();
    return protocol === "http/1.1" ? waitReason(controls.connectionsHeld()) : null;
  }

  get active() {
    return this.endedAt === null;
  }

  setState(state) {
    if (!this.current) return;
    this.state = state;
    this.panel.setState(state);
    this.panel.showWait(this.waitReason());
    controls.refresh();
  }

  chunk(index, text) {
    if (!this.current || !this.active) return;
    if (this.firstMs === null) this.firstMs = Math.round(performance.now() - this.startedAt);
    const next = this.lastIndex === null ? this.params.start : this.lastIndex + 1;
    if (index !== next) this.inOrder = false;
    this.lastIndex = index;
    this.received += 1;
    this.panel.queue(index, text);
  }

  /** Ends the run in `state`; `message`, when given, is shown to the user. */
  end(state, message) {
    if (!this.current || !this.active) return;
    this.endedAt = performance.now();
    if (message) this.panel.showError(message);
    this.setState(state);
    this.panel.render();
    // The stream's own timing entry is recorded as its response ends, a moment after (on a
    // busy machine, some moments): look for it a few times.
    const refresh = (tries) => {
      if (!this.current) return;
      this.panel.showProtocol();
      if (tries > 0 && this.panel.transport.http && !ownEntry(this)) {
        setTimeout(() => refresh(tries - 1), TICK_MS);
      }
    };
    setTimeout(() => refresh(ENTRY_TRIES), TICK_MS);
  }

  /** Ends the run as done, or as an error if chunks are missing. */
  complete() {
    if (this.expected !== null && this.received !== this.expected) {
      this.end("error", `the stream ended after ${this.received} of ${this.expected} chunks`);
    } else {
      this.end("done");
    }
  }
}

/** The form: reads the parameters, starts and stops runs, keeps the buttons truthful. */
const controls = {
  init() {
    this.form = document.getElementById("controls");
    this.panelsEl = document.getElementById("panels");
    this.buttons = {};
    for (const id of ["start", "stop", "pause", "resume"]) {
      this.buttons[id] = document.getElementById(id);
    }
    this.addChoices();
    this.panels = Object.fromEntries(TRANSPORTS.map((t) => [t.name, new Panel(t)]));
    this.panelsEl.append(...Object.values(this.panels).map((panel) => panel.el));
    const figure = document.getElementById("chart");
    if (new URLSearchParams(location.search).get("chart") === "off") {
      figure.remove();
      this.chart = null;
    } else {
      this.chart = new Chart(figure, TICK_MS);
      window.chunkstreamChart = Object.freeze({ read: () => this.chart.read() });
    }
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.start();
    });
    this.form.addEventListener("change", (e) => {
      if (e.target.name === "transport") this.showPanels();
    });
    this.buttons.stop.addEventListener("click", () => this.stop());
    this.buttons.pause.addEventListener("click", () => {
      for (const run of this.controllable("streaming")) run.pause?.();
    });
    this.buttons.resume.addEventListener("click", () => {
      for (const run of this.controllable("paused")) run.resume?.();
    });
    setInterval(() => this.tick(), TICK_MS);
    this.showPanels();
    this.refresh();
  },

  /** One choice per transport, before Race; the first is chosen. */
  addChoices() {
    const race = this.form.querySelector("input[name=transport][value=race]");
    const choices = TRANSPORTS.map((t, i) => {
      const input = Object.assign(document.createElement("input"), {
        type: "radio",
        name: "transport",
        value: t.name,
        checked: i === 0,
      });
      const label = document.createElement("label");
      label.append(input, ` ${t.label}`);
      if (t.api) {
        const code = document.createElement("code");
        code.textContent = t.api;
        label.append(" (", code, ")");
      }
      return label;
    });
    race.closest("label").before(...choices);
  },

  get mode() {
    return this.form.elements.transport.value;
  },

  /** The transports of the chosen mode, in the order of TRANSPORTS. */
  get transports() {
    return TRANSPORTS.filter((t) => this.mode === "race" || this.mode === t.name);
  },

  /** The query string, as typed: the server checks it and explains what is wrong. */
  params() {
    const query = new URLSearchParams();
    for (const name of ["count", "interval_ms"]) {
      const value = this.form.elements[name].value.trim();
      if (value !== "") query.set(name, value);
    }
    const count = query.has("count") ? Number(query.get("count")) : 10;
    return {
      query: query.toString(),
      start: 0,
      expected: Number.isSafeInteger(count) && count >= 0 ? count : null,
    };
  },

  runs() {
    return Object.values(this.panels)
      .map((panel) => panel.run)
      .filter((r) => r && r.active);
  },

  /** This page's HTTP streams that hold a connection: those that have their response. */
  connectionsHeld() {
    return this.runs().filter((r) => r.panel.transport.http && r.state === "streaming").length;
  },

  showPanels() {
    this.panelsEl.dataset.mode = this.mode;
    const shown = this.transports;
    for (const panel of Object.values(this.panels)) {
      panel.el.hidden = !shown.includes(panel.transport);
    }
  },

  start() {
    this.stop();
    this.showPanels();
    const params = this.params();
    const lines = this.transports.map((t) => {
      const run = new Run(this.panels[t.name], params);
      t.runner(run);
      return { ...t, run }; // the chart draws a line per transport, from its run's count
    });
    this.chart?.start(lines);
    this.refresh();
  },

  stop() {
    for (const run of this.runs()) run.stop?.();
    this.refresh();
  },

  tick() {
    for (const run of this.runs()) run.panel.tick();
    this.chart?.tick();
  },

  /** The running streams in `state` that take pause and resume messages. */
  controllable(state) {
    return this.runs().filter((r) => r.panel.transport.control && r.state === state);
  },

  refresh() {
    this.buttons.stop.disabled = this.runs().length === 0;
    this.buttons.pause.disabled = this.controllable("streaming").length === 0;
    this.buttons.resume.disabled = this.controllable("paused").length === 0;
  },
};

controls.init();
