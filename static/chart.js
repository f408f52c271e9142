// chunkstream live page: the chart of chunks received per second, one line per run.
//
// The chart never sees a chunk: it samples the counts the panels already keep, a few times a
// second, so the streams pay nothing for it. It is inline SVG, drawn again at each sample:
// crisp at any size, styled by the page's CSS, and made of elements a test can read.
//
// Each line keeps the run's count over time, never more than MAX_POINTS samples: past that,
// every other sample goes and sampling slows by half, so the whole run stays on the chart
// and a stream of hours costs what a stream of a minute does.

const SVG_NS = "http://www.w3.org/2000/svg";
/** A point's rate counts the chunks received over (at least) this span before it, in ms. */
const WINDOW_MS = 1000;
/** Samples kept per line. */
export const MAX_POINTS = 240;
/** The text alternative changes at most this often, in ms: each change is announced. */
const SPEAK_MS = 1000;
/** With reduced motion, the lines move at most this often, in ms, not at every sample. */
const CALM_MS = 1000;
/** Peaks further apart than this factor are drawn on a log scale. */
const LOG_RATIO = 10;
/** The plot's height, and the room its axes' labels take, in CSS pixels. */
const HEIGHT = 220;
const MARGIN = { top: 12, right: 16, bottom: 28, left: 56 };

/** An SVG element with attributes and, optionally, text. */
function svgElement(tag, attributes, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A short sample of a line (`{ colour, dash }`), for legends and panel titles. */
export function swatch({ colour, dash }) {
  const el = svgElement("svg", { class: "swatch", width: 28, height: 10, "aria-hidden": "true" });
  const line = { x1: 2, y1: 5, x2: 26, y2: 5, stroke: colour, "stroke-dasharray": dash };
  el.append(svgElement("line", line));
  return el;
}

/** A rate for people: three significant digits, `k` and `M` for thousands and millions. */
export function formatRate(rate) {
  const [divisor, unit] = rate >= 1e6 ? [1e6, " M"] : rate >= 1e3 ? [1e3, " k"] : [1, ""];
  return `${Number((rate / divisor).toPrecision(3))}${unit}`;
}

/** A round step (1, 2 or 5 times a power of ten) at least `rough`. */
function niceStep(rough) {
  const power = 10 ** Math.floor(Math.log10(rough));
  const mantissa = rough / power;
  return power * (mantissa <= 1 ? 1 : mantissa <= 2 ? 2 : mantissa <= 5 ? 5 : 10);
}

/**
 * The rate axis for lines whose highest points are `peaks`: from 0, linear; or by decades,
 * when the peaks differ by more than LOG_RATIO, so that a slow line is not flat on the floor.
 * `at(rate)` is the height of `rate`, from 0 (bottom) to 1 (top).
 */
function rateAxis(peaks) {
  const positive = peaks.filter((peak) => peak > 0);
  const high = Math.max(1, ...positive);
  if (positive.length > 1 && high > Math.min(...positive) * LOG_RATIO) {
    const bottom = Math.floor(Math.log10(Math.min(...positive))) - 1;
    const top = Math.ceil(Math.log10(high));
    const ticks = [];
    for (let e = bottom; e <= top; e++) ticks.push(10 ** e);
    // Rates below the lowest decade (a line starting from 0) lie on the floor.
    const at = (rate) => (Math.log10(Math.max(rate, ticks[0])) - bottom) / (top - bottom);
    return { scale: "log", ticks, at };
  }
  const step = niceStep(high / 4);
  const top = Math.ceil(high / step) * step;
  const ticks = [];
  for (let value = 0; value <= top + step / 2; value += step) ticks.push(value);
  return { scale: "linear", ticks, at: (rate) => rate / top };
}

/**
 * One line: the count of one run sampled over time; its rates follow from the counts.
 * (Exported for the tests, which feed one an hour of counts.)
 */
export class Series {
  /** `source` is `{ name, label, colour, dash, run }`; times count from `t0`. */
  constructor(source, t0, sampleMs) {
    this.source = source;
    this.t0 = t0;
    this.sampleMs = sampleMs;
    this.spacing = sampleMs; // doubles at each thinning
    this.origin = { t: source.run.startedAt - t0, count: 0 };
    this.samples = [];
    this.done = false;
  }

  /** Records the run's count at `now` when a sample is due, and its final count once it ended. */
  sample(now) {
    if (this.done) return;
    const run = this.source.run;
    if (run.endedAt !== null) {
      this.keep(run.endedAt - this.t0, run.received);
      this.done = true;
      return;
    }
    const t = now - this.t0;
    const last = this.samples.at(-1) ?? this.origin;
    if (t - last.t >= this.spacing - this.sampleMs / 2) this.keep(t, run.received);
  }

  keep(t, count) {
    this.samples.push({ t, count });
    if (this.samples.length > MAX_POINTS) {
      // Thin out, keeping the newest: the rate between two kept samples stays exact.
      const newest = this.samples.length - 1;
      this.samples = this.samples.filter((_, i) => (newest - i) % 2 === 0);
      this.spacing *= 2;
    }
  }

  /** The counts the line is drawn from: `[seconds, chunks received]`, from the start. */
  counts() {
    return [this.origin, ...this.samples].map(({ t, count }) => [t / 1000, count]);
  }

  /**
   * The line as drawn: `[seconds, chunks per second]` at each sample and, while the run goes
   * on, now. Each rate counts the chunks received since the latest sample at least WINDOW_MS
   * earlier (or since the start).
   */
  points(now) {
    const counts = [this.origin, ...this.samples];
    const t = now - this.t0;
    if (!this.done && t > counts.at(-1).t) counts.push({ t, count: this.source.run.received });
    const points = [];
    let from = 0;
    for (let i = 1; i < counts.length; i++) {
      while (from + 1 < i && counts[i].t - counts[from + 1].t >= WINDOW_MS) from++;
      const seconds = (counts[i].t - counts[from].t) / 1000;
      if (seconds > 0) {
        points.push([counts[i].t / 1000, (counts[i].count - counts[from].count) / seconds]);
      }
    }
    return points;
  }
}

/** Where things go on the plot: `end` seconds across, the rates of `axis` up. */
class Frame {
  constructor(width, end, axis) {
    this.left = MARGIN.left;
    this.right = width - MARGIN.right;
    this.top = MARGIN.top;
    this.bottom = HEIGHT - MARGIN.bottom;
    this.end = end;
    this.axis = axis;
  }

  x(seconds) {
    return (this.left + (seconds / this.end) * (this.right - this.left)).toFixed(1);
  }

  y(rate) {
    return (this.bottom - this.axis.at(rate) * (this.bottom - this.top)).toFixed(1);
  }

  /** The rate axis's grid and labels, and the time axis with its labels. */
  axes() {
    const { left, right, bottom } = this;
    const parts = [];
    for (const rate of this.axis.ticks) {
      const y = this.y(rate);
      parts.push(svgElement("line", { class: "grid", x1: left, x2: right, y1: y, y2: y }));
      parts.push(svgElement("text", { class: "y-label", x: left - 6, y }, formatRate(rate)));
    }
    const step = niceStep(this.end / 6);
    for (let seconds = 0; seconds <= this.end + 1e-9; seconds += step) {
      const label = `${Number(seconds.toFixed(2))} s`;
      const x = this.x(seconds);
      parts.push(svgElement("text", { class: "x-label", x, y: bottom + 18 }, label));
    }
    parts.push(svgElement("line", { class: "axis", x1: left, x2: right, y1: bottom, y2: bottom }));
    return parts;
  }

  /** One line (`{ name, colour, dash, points }`), its newest point marked. */
  line({ name, colour, dash, points }) {
    const g = svgElement("g", { class: "line", "data-transport": name });
    const vertices = points.map(([seconds, rate]) => `${this.x(seconds)},${this.y(rate)}`);
    const polyline = { points: vertices.join(" "), stroke: colour, "stroke-dasharray": dash };
    g.append(svgElement("polyline", polyline));
    // Marked, a run too short for two samples still shows.
    const last = points.at(-1);
    if (last) {
      const [seconds, rate] = last;
      g.append(svgElement("circle", { cx: this.x(seconds), cy: this.y(rate), r: 3.5, fill: colour }));
    }
    return g;
  }
}

/** The chart: a plot (`svg`), its legend (`.legend`) and its text alternative (`.summary`). */
export class Chart {
  /** `figure` holds the three; `sampleMs` is how often `tick()` is called. */
  constructor(figure, sampleMs) {
    this.svg = figure.querySelector("svg");
    this.legend = figure.querySelector(".legend");
    this.scaleEl = figure.querySelector(".scale");
    this.summary = figure.querySelector(".summary");
    this.sampleMs = sampleMs;
    this.calm = matchMedia("(prefers-reduced-motion: reduce)");
    this.series = [];
    this.drawn = { scale: "linear", series: [] };
    this.drawnAt = -Infinity;
    this.describedAt = -Infinity;
    this.toDraw = false;
    this.toDescribe = false;
    // Drawn to the plot's width: again when it changes (and once now, empty).
    new ResizeObserver(() => this.draw(performance.now())).observe(this.svg);
  }

  /** Starts over with one line per source (`{ name, label, colour, dash, run }`), in order. */
  start(sources) {
    const t0 = Math.min(...sources.map((s) => s.run.startedAt));
    this.series = sources.map((source) => new Series(source, t0, this.sampleMs));
    this.legend.replaceChildren(
      ...sources.map((source) => {
        const li = document.createElement("li");
        li.append(swatch(source), source.label);
        return li;
      }),
    );
    this.draw(performance.now()); // at once, whatever the motion: the user pressed Start
  }

  /** Samples every line, then redraws and re-describes the chart when each is due. */
  tick() {
    const sampling = this.series.some((s) => !s.done);
    if (!sampling && !this.toDraw && !this.toDescribe) return;
    const now = performance.now();
    if (sampling) {
      for (const s of this.series) s.sample(now);
      this.toDraw = this.toDescribe = true;
    }
    if (this.toDraw && now - this.drawnAt >= (this.calm.matches ? CALM_MS : 0)) this.draw(now);
    if (this.toDescribe && !this.toDraw && now - this.describedAt >= SPEAK_MS) this.describe(now);
  }

  /** Draws every line as it is at `now`, on axes that fit them all. */
  draw(now) {
    const series = this.series.map((s) => ({
      name: s.source.name,
      label: s.source.label,
      colour: s.source.colour,
      dash: s.source.dash,
      state: s.source.run.state,
      done: s.done,
      points: s.points(now),
      counts: s.counts(),
    }));
    const width = Math.max(this.svg.clientWidth, MARGIN.left + MARGIN.right + 100);
    const axis = rateAxis(series.map((s) => Math.max(0, ...s.points.map(([, rate]) => rate))));
    const end = Math.max(1, ...series.map((s) => s.points.at(-1)?.[0] ?? 0));
    const frame = new Frame(width, end, axis);
    this.svg.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    if (series.length === 0) {
      const hint = "Press Start: each transport's chunks per second appear here.";
      const centre = { class: "hint", x: width / 2, y: HEIGHT / 2 };
      this.svg.replaceChildren(svgElement("text", centre, hint));
    } else {
      this.svg.replaceChildren(...frame.axes(), ...series.map((s) => frame.line(s)));
    }
    this.scaleEl.textContent = axis.scale === "log" ? "(log scale)" : "";
    this.drawn = { scale: axis.scale, series };
    this.drawnAt = now;
    this.toDraw = false;
  }

  /** Puts what the chart shows now into words: the last rate of each line, and its state. */
  describe(now) {
    const text = this.drawn.series
      .map(({ label, state, points }) => {
        const last = points.at(-1);
        const rate = last ? `${formatRate(last[1])}/s` : "no chunk yet";
        return state === "streaming" ? `${label} ${rate}` : `${label} ${rate} (${state})`;
      })
      .join(", ");
    if (this.summary.textContent !== text) this.summary.textContent = text;
    this.describedAt = now;
    this.toDescribe = false;
  }

  /** What was drawn last, as plain data: for tests and the curious. */
  read() {
    const time = (ms) => (Number.isFinite(ms) ? ms : null); // "never" as JSON can say it
    return structuredClone({
      ...this.drawn,
      summary: this.summary.textContent,
      drawnAt: time(this.drawnAt),
      describedAt: time(this.describedAt),
      settled: this.series.every((s) => s.done) && !this.toDraw && !this.toDescribe,
    });
  }
}
