// Digits in the browser: the drawing pad, and turning any picture into the 28×28 grid the models
// read (light ink on black, cropped to the ink, fitted into 20×20, centred by its mass), the way
// predict-svc prepares an upload, so the page can ask for every class's probability.

export const SIDE = 28;
const BOX = 20;
const CENTRE = 14;
const MIN_CONTRAST = 0.12;
const NOISE_FLOOR = 0.08;
/** Larger pictures are first brought down to this side (the digit ends up 20 pixels anyway). */
const WORKING_SIDE = 512;

/** Keyboard drawing: how far an arrow key moves the pen (Shift: a small step), in pad pixels. */
const KEY_STEP = 14;
const SMALL_KEY_STEP = 4;

/**
 * A drawing pad on `canvas`: pointer (mouse, touch, pen) strokes in white on black, or from the
 * keyboard (arrows move the pen, Space puts it down or lifts it; `marker` shows where it is).
 */
export class DrawingPad {
  constructor(canvas, { onChange = () => {}, marker = null, onPen = () => {} } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d', { willReadFrequently: true });
    this.onChange = onChange;
    this.onPen = onPen;
    this.marker = marker;
    this.drawn = false;
    this.last = null;
    this.pen = { x: canvas.width / 2, y: canvas.height / 2, down: false };
    this.clear();
    canvas.addEventListener('pointerdown', (e) => this.#down(e));
    canvas.addEventListener('pointermove', (e) => this.#move(e));
    for (const end of ['pointerup', 'pointercancel', 'pointerleave']) {
      canvas.addEventListener(end, () => {
        this.last = null;
      });
    }
    canvas.addEventListener('keydown', (e) => this.#key(e));
    canvas.addEventListener('focus', () => this.#placeMarker(true));
    canvas.addEventListener('blur', () => {
      this.#setPen(false);
      this.#placeMarker(false);
    });
  }

  #key(e) {
    const moves = { ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0] };
    if (e.key in moves) {
      e.preventDefault();
      const step = e.shiftKey ? SMALL_KEY_STEP : KEY_STEP;
      const [dx, dy] = moves[e.key];
      const from = { x: this.pen.x, y: this.pen.y };
      this.pen.x = Math.min(this.canvas.width, Math.max(0, this.pen.x + dx * step));
      this.pen.y = Math.min(this.canvas.height, Math.max(0, this.pen.y + dy * step));
      if (this.pen.down) this.#stroke(from, this.pen);
      this.#placeMarker(true);
    } else if (e.key === ' ' || e.key === 'Enter') {
      e.preventDefault();
      this.#setPen(!this.pen.down);
    } else if (e.key === 'Escape') {
      this.#setPen(false);
    }
  }

  #setPen(down) {
    if (this.pen.down === down) return;
    if (down && this.picture) this.clear();
    this.pen.down = down;
    if (down) this.#stroke(this.pen, this.pen);
    this.#placeMarker(document.activeElement === this.canvas);
    this.onPen(down);
  }

  #placeMarker(visible) {
    if (!this.marker) return;
    this.marker.classList.toggle('hidden', !visible);
    this.marker.classList.toggle('down', this.pen.down);
    this.marker.style.left = `${(this.pen.x / this.canvas.width) * 100}%`;
    this.marker.style.top = `${(this.pen.y / this.canvas.height) * 100}%`;
  }

  clear() {
    const { ctx, canvas } = this;
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    this.drawn = false;
    this.picture = null;
    this.onChange(false);
  }

  /** What to recognise: the chosen picture's own pixels, else the drawing. */
  pixels() {
    if (this.picture) return picturePixels(this.picture);
    return this.ctx.getImageData(0, 0, this.canvas.width, this.canvas.height);
  }

  /** Shows a picture (a dropped file) on the pad, fitted and centred; it is what gets recognised. */
  show(image) {
    const { ctx, canvas } = this;
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const scale = Math.min(canvas.width / image.width, canvas.height / image.height);
    const w = image.width * scale;
    const h = image.height * scale;
    ctx.drawImage(image, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
    this.picture = image;
    this.drawn = true;
    this.onChange(true);
  }

  #point(e) {
    const rect = this.canvas.getBoundingClientRect();
    return {
      x: ((e.clientX - rect.left) / rect.width) * this.canvas.width,
      y: ((e.clientY - rect.top) / rect.height) * this.canvas.height,
    };
  }

  #down(e) {
    e.preventDefault();
    // Drawing after a picture starts a new drawing: strokes over a photo are no digit.
    if (this.picture) this.clear();
    this.canvas.setPointerCapture?.(e.pointerId);
    this.last = this.#point(e);
    this.#stroke(this.last, this.last);
  }

  #move(e) {
    if (!this.last) return;
    e.preventDefault();
    const next = this.#point(e);
    this.#stroke(this.last, next);
    this.last = next;
  }

  #stroke(from, to) {
    const { ctx, canvas } = this;
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = canvas.width / 14;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x, to.y);
    ctx.stroke();
    if (!this.drawn) {
      this.drawn = true;
      this.onChange(true);
    }
  }
}

/** A picture's RGBA pixels at its own size (at most `maxSide` on its longest side). */
export function picturePixels(image, maxSide = 1024) {
  const scale = Math.min(1, maxSide / Math.max(image.width, image.height));
  const width = Math.max(1, Math.round(image.width * scale));
  const height = Math.max(1, Math.round(image.height * scale));
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(image, 0, 0, width, height);
  return ctx.getImageData(0, 0, width, height);
}

/** Grey levels in [0, 1] of RGBA pixels; transparency becomes the opposite of the ink's colour. */
function greyLevels({ data, width, height }) {
  const n = width * height;
  const luma = new Float32Array(n);
  const alpha = new Float32Array(n);
  let weighted = 0;
  let weights = 0;
  for (let i = 0; i < n; i++) {
    const [r, g, b, a] = [data[4 * i], data[4 * i + 1], data[4 * i + 2], data[4 * i + 3]];
    luma[i] = (0.299 * r + 0.587 * g + 0.114 * b) / 255;
    alpha[i] = a / 255;
    weighted += luma[i] * alpha[i];
    weights += alpha[i];
  }
  const background = weights > 0 && weighted >= 0.5 * weights ? 0 : 1;
  for (let i = 0; i < n; i++) luma[i] = luma[i] * alpha[i] + background * (1 - alpha[i]);
  return luma;
}

function median(values) {
  const sorted = Float32Array.from(values).sort();
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
}

function borderOf(levels, width, height) {
  const ring = [];
  for (let x = 0; x < width; x++) ring.push(levels[x], levels[(height - 1) * width + x]);
  for (let y = 1; y < height - 1; y++) ring.push(levels[y * width], levels[y * width + width - 1]);
  return ring;
}

/** One axis of a tent-filter resample (wider tents when shrinking, so every pixel counts). */
function resampleAxis(src, srcLen, dstLen, lines, at) {
  const ratio = srcLen / dstLen;
  const reach = Math.max(ratio, 1);
  const out = new Float32Array(dstLen * lines);
  for (let o = 0; o < dstLen; o++) {
    const centre = (o + 0.5) * ratio;
    const first = Math.max(0, Math.floor(centre - reach));
    const last = Math.min(srcLen - 1, Math.ceil(centre + reach));
    const weights = [];
    let total = 0;
    for (let i = first; i <= last; i++) {
      const w = Math.max(0, 1 - Math.abs(i + 0.5 - centre) / reach);
      weights.push(w);
      total += w;
    }
    for (let line = 0; line < lines; line++) {
      let sum = 0;
      for (let k = 0; k < weights.length; k++) sum += weights[k] * src[at(first + k, line)];
      out[line * dstLen + o] = total > 0 ? sum / total : 0;
    }
  }
  return out;
}

/** Resizes a plane of `w`×`h` values to `nw`×`nh`. */
function resize(plane, w, h, nw, nh) {
  if (w === nw && h === nh) return plane;
  // Rows first (result: nw per row, h rows), then columns (result: nh per column, nw columns).
  const rows = resampleAxis(plane, w, nw, h, (i, line) => line * w + i);
  const cols = resampleAxis(rows, h, nh, nw, (i, line) => i * nw + line);
  const out = new Float32Array(nw * nh);
  for (let x = 0; x < nw; x++) for (let y = 0; y < nh; y++) out[y * nw + x] = cols[x * nh + y];
  return out;
}

/**
 * RGBA pixels (`ImageData`-like) → the 28×28 grid (`Uint8Array`, 0 = background), or null when
 * the picture shows no digit.
 */
export function gridFromPixels(image) {
  let { width, height } = image;
  let levels = greyLevels(image);
  const longest = Math.max(width, height);
  if (longest > WORKING_SIDE) {
    const scale = WORKING_SIDE / longest;
    const nw = Math.max(1, Math.round(width * scale));
    const nh = Math.max(1, Math.round(height * scale));
    levels = resize(levels, width, height, nw, nh);
    [width, height] = [nw, nh];
  }
  // Light paper means dark ink: measure ink as the distance from the paper.
  const paper = median(borderOf(levels, width, height));
  const darkInk = paper > 0.5;
  const ink = new Float32Array(levels.length);
  let peak = 0;
  for (let i = 0; i < levels.length; i++) {
    const value = darkInk ? paper - levels[i] : levels[i] - paper;
    ink[i] = Math.max(0, value);
    peak = Math.max(peak, ink[i]);
  }
  if (peak < MIN_CONTRAST) return null;
  let [left, top, right, bottom] = [width, height, -1, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      ink[i] /= peak;
      if (ink[i] < NOISE_FLOOR) ink[i] = 0;
      if (ink[i] > 0) {
        left = Math.min(left, x);
        right = Math.max(right, x);
        top = Math.min(top, y);
        bottom = Math.max(bottom, y);
      }
    }
  }
  if (right < 0) return null;
  const [bw, bh] = [right - left + 1, bottom - top + 1];
  const cropped = new Float32Array(bw * bh);
  for (let y = 0; y < bh; y++) {
    for (let x = 0; x < bw; x++) cropped[y * bw + x] = ink[(top + y) * width + left + x];
  }
  const scale = BOX / Math.max(bw, bh);
  const fit = (side) => Math.min(BOX, Math.max(1, Math.round(side * scale)));
  const [fw, fh] = [fit(bw), fit(bh)];
  const digit = resize(cropped, bw, bh, fw, fh);
  let top2 = 0;
  for (const v of digit) top2 = Math.max(top2, v);
  if (top2 <= 0) return null;
  // Centre of mass at the grid's centre, as far as the digit fits.
  let [mass, sx, sy] = [0, 0, 0];
  for (let y = 0; y < fh; y++) {
    for (let x = 0; x < fw; x++) {
      const v = Math.min(1, digit[y * fw + x] / top2);
      digit[y * fw + x] = v;
      mass += v;
      sx += v * x;
      sy += v * y;
    }
  }
  const offset = (sum, side) => {
    const centre = mass > 0 ? sum / mass : side / 2;
    return Math.min(SIDE - side, Math.max(0, Math.round(CENTRE - centre)));
  };
  const [ox, oy] = [offset(sx, fw), offset(sy, fh)];
  const grid = new Uint8Array(SIDE * SIDE);
  for (let y = 0; y < fh; y++) {
    for (let x = 0; x < fw; x++) grid[(oy + y) * SIDE + ox + x] = Math.round(digit[y * fw + x] * 255);
  }
  return grid;
}

/** The grid as RGBA pixels, for `gridFromPixels` and for drawing. */
export function pixelsOfGrid(grid) {
  const data = new Uint8ClampedArray(SIDE * SIDE * 4);
  grid.forEach((v, i) => {
    data.set([v, v, v, 255], i * 4);
  });
  return { data, width: SIDE, height: SIDE };
}

/** The grid drawn on a new 28×28 canvas. */
export function gridCanvas(grid) {
  const canvas = document.createElement('canvas');
  canvas.width = SIDE;
  canvas.height = SIDE;
  const { data } = pixelsOfGrid(grid);
  canvas.getContext('2d').putImageData(new ImageData(data, SIDE, SIDE), 0, 0);
  return canvas;
}

/** The grid as a PNG file, for the predict routes' multipart `file`. */
export function gridPng(grid) {
  return new Promise((resolve, reject) => {
    gridCanvas(grid).toBlob((blob) => (blob ? resolve(blob) : reject(new Error('PNG encoding failed'))), 'image/png');
  });
}

/** The model input: pixels scaled to [0, 1], row by row. */
export function gridInput(grid) {
  return Array.from(grid, (v) => v / 255);
}

/** A `data:` URL showing a stored input (base64 of the 784 grey bytes, as predict-svc keeps it). */
export function storedInputUrl(base64) {
  try {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    if (bytes.length !== SIDE * SIDE) return null;
    return gridCanvas(bytes).toDataURL('image/png');
  } catch {
    // Not base64 (or not a string): the entry is shown without its image.
    return null;
  }
}

/** Decodes an image file into a drawable bitmap, or throws a sentence. */
export async function decodeImage(file) {
  if (!file.type.startsWith('image/')) throw new Error('That file is not an image: choose a PNG, JPEG, GIF, BMP or WebP picture.');
  try {
    return await createImageBitmap(file);
  } catch {
    throw new Error('That image cannot be read: it may be damaged or in an unsupported format.');
  }
}
