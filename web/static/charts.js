// Charts on top of Chart.js (loaded from /vendor as the global `Chart`), and the confusion
// matrix as an HTML table heat map (a real table, so screen readers read its numbers).

const ACCENT = '#1d4f91';
const GOOD = '#1e6b34';
const BAD = '#a32020';
const ORANGE = '#b35900';

function chartLib() {
  if (!window.Chart) throw new Error('The chart library did not load: run `cargo xtask setup` on the server.');
  return window.Chart;
}

const reduceMotion = window.matchMedia?.('(prefers-reduced-motion: reduce)').matches;

function baseOptions(extra = {}) {
  return {
    responsive: true,
    maintainAspectRatio: false,
    animation: reduceMotion ? false : { duration: 250 },
    plugins: { legend: { display: false } },
    ...extra,
  };
}

/** One bar per digit: the probability of every class, the best one highlighted. */
export function probabilityChart(canvas) {
  const Chart = chartLib();
  return new Chart(canvas, {
    type: 'bar',
    data: {
      labels: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
      datasets: [{ label: 'Probability (%)', data: new Array(10).fill(0), backgroundColor: ACCENT }],
    },
    options: baseOptions({
      scales: {
        y: { min: 0, max: 100, title: { display: true, text: '%' } },
        x: { title: { display: true, text: 'digit' } },
      },
    }),
  });
}

export function showProbabilities(chart, probabilities) {
  const best = probabilities.indexOf(Math.max(...probabilities));
  const dataset = chart.data.datasets[0];
  dataset.data = probabilities.map((p) => Math.round(p * 1000) / 10);
  dataset.backgroundColor = probabilities.map((_, d) => (d === best ? ORANGE : ACCENT));
  chart.update();
}

/** Loss and validation accuracy per epoch, on two axes. */
export function trainingChart(canvas) {
  const Chart = chartLib();
  return new Chart(canvas, {
    type: 'line',
    data: {
      labels: [],
      datasets: [
        { label: 'loss', data: [], borderColor: BAD, backgroundColor: BAD, yAxisID: 'loss' },
        { label: 'validation accuracy (%)', data: [], borderColor: GOOD, backgroundColor: GOOD, yAxisID: 'acc' },
      ],
    },
    options: baseOptions({
      plugins: { legend: { display: true } },
      scales: {
        x: { title: { display: true, text: 'epoch' } },
        loss: { position: 'left', beginAtZero: true, title: { display: true, text: 'loss' } },
        acc: { position: 'right', min: 0, max: 100, grid: { drawOnChartArea: false }, title: { display: true, text: '%' } },
      },
    }),
  });
}

export function resetTraining(chart) {
  chart.data.labels = [];
  chart.data.datasets.forEach((d) => {
    d.data = [];
  });
  chart.update();
}

export function addEpoch(chart, epoch, loss, accuracy) {
  const at = chart.data.labels.indexOf(epoch);
  if (at >= 0) {
    chart.data.datasets[0].data[at] = loss;
    chart.data.datasets[1].data[at] = accuracy;
  } else {
    chart.data.labels.push(epoch);
    chart.data.datasets[0].data.push(loss);
    chart.data.datasets[1].data.push(accuracy);
  }
  chart.update();
}

/** A bar chart of labelled values, replaced on each call. */
export function barChart(canvas, { label, max, colour = ACCENT, stacked = false }) {
  const Chart = chartLib();
  return new Chart(canvas, {
    type: 'bar',
    data: { labels: [], datasets: [{ label, data: [], backgroundColor: colour }] },
    options: baseOptions({
      plugins: { legend: { display: stacked } },
      scales: {
        x: { stacked },
        y: { stacked, beginAtZero: true, ...(max ? { max } : {}) },
      },
    }),
  });
}

export function setBars(chart, labels, datasets) {
  chart.data.labels = labels;
  chart.data.datasets = datasets;
  chart.update();
}

export const COLOURS = { ACCENT, GOOD, BAD, ORANGE };

function hslToRgb(hue, saturation, lightness) {
  const a = saturation * Math.min(lightness, 1 - lightness);
  const channel = (n) => {
    const k = (n + hue / 30) % 12;
    return Math.round(255 * (lightness - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [channel(0), channel(8), channel(4)];
}

/** Black or white, whichever contrasts more with `rgb` (at least 4.5:1 for any colour). */
function readableOn(rgb) {
  const linear = rgb.map((c) => {
    const v = c / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  const luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2];
  return (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) ? '#000000' : '#ffffff';
}

/** The confusion matrix (rows: true digit, columns: prediction) as a table heat map. */
export function renderHeatMap(table, matrix) {
  const max = Math.max(1, ...matrix.flat());
  table.replaceChildren();
  const caption = document.createElement('caption');
  caption.className = 'muted';
  caption.textContent = 'Rows: the true digit. Columns: the prediction. Darker means more feedback.';
  table.append(caption);
  const head = table.createTHead().insertRow();
  const corner = document.createElement('th');
  corner.textContent = 'true \\ predicted';
  corner.scope = 'col';
  head.append(corner);
  for (let d = 0; d < 10; d++) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = String(d);
    head.append(th);
  }
  const body = table.createTBody();
  matrix.forEach((row, truth) => {
    const tr = body.insertRow();
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = String(truth);
    tr.append(th);
    row.forEach((count, predicted) => {
      const td = tr.insertCell();
      td.textContent = String(count);
      if (!count) return;
      // Diagonal (right) in green, the rest (mistakes) in red, darker with more feedback.
      const rgb = hslToRgb(truth === predicted ? 140 : 0, 0.55, 0.96 - (count / max) * 0.66);
      td.style.backgroundColor = `rgb(${rgb.join(' ')})`;
      td.style.color = readableOn(rgb);
    });
  });
}

/** `#rrggbb` with an alpha, for the interval bands. */
function translucent(hex, alpha) {
  const [r, g, b] = [1, 3, 5].map((at) => parseInt(hex.slice(at, at + 2), 16));
  return `rgb(${r} ${g} ${b} / ${alpha})`;
}

/**
 * Values over time, each series a line inside its interval (a shaded band between its lower and
 * upper bound), and optionally a dashed horizontal boundary. Three datasets per series (lower,
 * upper filled down to lower, the estimate), then the boundary; only estimates and the
 * boundary are in the legend.
 */
export function intervalChart(canvas, { series, yTitle, boundary = null }) {
  const Chart = chartLib();
  const datasets = [];
  for (const { label, colour } of series) {
    const band = { data: [], borderColor: 'transparent', pointRadius: 0, fill: false, inLegend: false };
    datasets.push({ ...band, label: `${label} lower bound` });
    datasets.push({ ...band, label: `${label} upper bound`, fill: '-1', backgroundColor: translucent(colour, 0.18) });
    datasets.push({ label, data: [], borderColor: colour, backgroundColor: colour, pointRadius: 2, fill: false, inLegend: true });
  }
  if (boundary) {
    datasets.push({ label: boundary.label, data: [], borderColor: BAD, backgroundColor: BAD, borderDash: [6, 4], pointRadius: 0, fill: false, inLegend: true });
  }
  return new Chart(canvas, {
    type: 'line',
    data: { labels: [], datasets },
    options: baseOptions({
      plugins: { legend: { display: true, labels: { filter: (item, data) => data.datasets[item.datasetIndex].inLegend } } },
      scales: {
        x: { title: { display: true, text: 'time' } },
        y: { title: { display: true, text: yTitle } },
      },
    }),
  });
}

/**
 * Replaces an interval chart's points: `points` are `{label, values: [{estimate, lower, upper}
 * per series], boundary}`, oldest first (null values leave a gap).
 */
export function setIntervals(chart, points) {
  chart.data.labels = points.map((p) => p.label);
  const datasets = chart.data.datasets;
  const seriesCount = Math.floor(datasets.length / 3);
  for (let s = 0; s < seriesCount; s++) {
    datasets[3 * s].data = points.map((p) => p.values[s]?.lower ?? null);
    datasets[3 * s + 1].data = points.map((p) => p.values[s]?.upper ?? null);
    datasets[3 * s + 2].data = points.map((p) => p.values[s]?.estimate ?? null);
  }
  if (datasets.length > 3 * seriesCount) datasets[3 * seriesCount].data = points.map((p) => p.boundary ?? null);
  chart.update();
}
