// The digit page: draw on #canvas, and the network served by
// `python src/build_network.py serve` reads the drawing as you draw.
//
// How it fits together:
//   pointer events -> strokes in `history` -> drawn on #canvas
//   every change bumps `version` and asks for a prediction; the throttle
//   below sends at most one request at a time and at most one every
//   MIN_INTERVAL_MS, and always ends by sending the latest drawing;
//   POST /api/predict -> the digit, the ten bars, the 28x28 image the network
//   sees (#seen) and, for a CNN, its first convolution layer (#feature-maps).
//
// The page speaks only to its own server (same origin), needs no library and
// no build step: this file is what the browser runs.
"use strict";

// -- settings -----------------------------------------------------------------------

// A pen ~20 px wide on the 280x280 canvas becomes ~2 px once the drawing is
// scaled to MNIST's 20x20 digit box: the stroke width of MNIST's digits.
const PEN_WIDTH = 20;
const INK = "#111111";
const PAPER = "#ffffff";

// While drawing, at most one request every 150 ms (and one at a time): a
// prediction takes a few ms on the server, so this keeps the bars moving
// without queueing requests faster than they are answered.
const MIN_INTERVAL_MS = 150;

// The largest image file the server accepts (server.MAX_IMAGE_BYTES).
const MAX_UPLOAD_BYTES = 1000000;

// -- the page's elements ----------------------------------------------------------

const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const dropZone = document.getElementById("drop-zone");
const fileInput = document.getElementById("file");
const undoButton = document.getElementById("undo");
const clearButton = document.getElementById("clear");
const modelSelect = document.getElementById("model");
const modelInfo = document.getElementById("model-info");
const statusLine = document.getElementById("status");
const digitOut = document.getElementById("digit");
const confidenceOut = document.getElementById("confidence");
const barsBox = document.getElementById("bars");
const timingsOut = document.getElementById("timings");
const seenCanvas = document.getElementById("seen");
const seenCtx = seenCanvas.getContext("2d");
const featureSection = document.getElementById("feature-section");
const featureMapsBox = document.getElementById("feature-maps");
const featureCount = document.getElementById("feature-count");

// -- state ------------------------------------------------------------------------

// What is on the canvas, oldest first, so that Undo can redraw without the
// last entry: {kind: "stroke", points: [[x, y], ...]} or, for a dropped
// file, {kind: "image", file, picture} (picture: null if this browser cannot
// decode the format; the server may still read it).
let history = [];
let currentStroke = null;      // the stroke under the pen, also the last entry of history

// `version` counts changes to what should be classified (drawing or model).
// A result is current when it was asked for the latest version.
let version = 0;
// `epoch` changes when the drawing is replaced rather than extended (Clear,
// Undo, a dropped file, another model): an answer about an older epoch is
// dropped, while during a stroke a slightly old answer is still worth showing.
let epoch = 0;

let models = {};               // name -> the entry of GET /api/models

// -- drawing ----------------------------------------------------------------------

function setUpPen() {
  ctx.lineWidth = PEN_WIDTH;
  ctx.lineCap = "round";       // round caps and joins: a stroke looks like a felt pen's
  ctx.lineJoin = "round";
  ctx.strokeStyle = INK;
  ctx.fillStyle = INK;
}

function dot([x, y]) {
  // A single click leaves a round dot (a zero-length line may not be drawn).
  ctx.beginPath();
  ctx.arc(x, y, PEN_WIDTH / 2, 0, 2 * Math.PI);
  ctx.fill();
}

function segment([x0, y0], [x1, y1]) {
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
}

function drawStroke(points) {
  dot(points[0]);
  if (points.length < 2) return;
  ctx.beginPath();
  ctx.moveTo(points[0][0], points[0][1]);
  for (const [x, y] of points.slice(1)) ctx.lineTo(x, y);
  ctx.stroke();
}

function drawPicture(picture) {
  // Fit the whole picture in the canvas, keeping its proportions, on paper.
  const scale = Math.min(canvas.width / picture.width, canvas.height / picture.height);
  const w = picture.width * scale, h = picture.height * scale;
  ctx.drawImage(picture, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
}

function redraw() {
  // The canvas is painted white (not left transparent) so the PNG sent to the
  // server is exactly what the user sees: dark ink on light paper.
  ctx.fillStyle = PAPER;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  setUpPen();
  for (const entry of history) {
    if (entry.kind === "stroke") {
      drawStroke(entry.points);
    } else if (entry.picture) {
      drawPicture(entry.picture);
      setUpPen();
    } else {
      ctx.fillStyle = "#666666";
      ctx.font = "16px sans-serif";
      ctx.textAlign = "center";
      ctx.fillText(entry.file.name, canvas.width / 2, canvas.height / 2);
      setUpPen();
    }
  }
  canvas.dataset.strokes = String(history.length);   // read by the tests
  undoButton.disabled = history.length === 0;
  clearButton.disabled = history.length === 0;
}

function canvasPoint(event) {
  // The canvas may be shown smaller than its 280x280 pixels (narrow screens):
  // map the pointer from CSS pixels to canvas pixels.
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * (canvas.width / box.width),
          (event.clientY - box.top) * (canvas.height / box.height)];
}

canvas.addEventListener("pointerdown", (event) => {
  if (event.pointerType === "mouse" && event.button !== 0) return;   // left button only
  event.preventDefault();
  // Capture: the stroke goes on even if the pen leaves the canvas for a moment.
  canvas.setPointerCapture(event.pointerId);
  const point = canvasPoint(event);
  currentStroke = {kind: "stroke", points: [point]};
  history.push(currentStroke);
  dot(point);
  canvas.dataset.strokes = String(history.length);
  undoButton.disabled = clearButton.disabled = false;
  drawingChanged(false);
});

canvas.addEventListener("pointermove", (event) => {
  if (!currentStroke) return;
  // Coalesced events: the browser may merge several pointer moves into one
  // event per frame; taking them all keeps fast strokes smooth.
  const events = (event.getCoalescedEvents && event.getCoalescedEvents().length)
    ? event.getCoalescedEvents() : [event];
  for (const e of events) {
    const point = canvasPoint(e);
    segment(currentStroke.points[currentStroke.points.length - 1], point);
    currentStroke.points.push(point);
  }
  drawingChanged(false);
});

function endStroke() {
  if (!currentStroke) return;
  currentStroke = null;
  // Lifting the pen changes nothing to classify: the throttle already ends
  // by sending the latest version, which is the finished stroke.
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);
canvas.addEventListener("lostpointercapture", endStroke);

function undo() {
  if (history.length === 0) return;
  currentStroke = null;
  history.pop();
  redraw();
  drawingChanged(true);
}

function clearDrawing() {
  currentStroke = null;
  history = [];
  redraw();
  drawingChanged(true);
}

undoButton.addEventListener("click", undo);
clearButton.addEventListener("click", clearDrawing);

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLSelectElement || event.target instanceof HTMLInputElement) return;
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
    event.preventDefault();
    undo();
  } else if (event.key === "Escape") {
    clearDrawing();
  }
});

// -- a dropped or opened image file ----------------------------------------------

async function useFile(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    setStatus("error", `${file.name} is not an image file (it is ${file.type}).`);
    return;
  }
  let picture = null;
  try {
    picture = await createImageBitmap(file);
  } catch (err) {
    picture = null;   // e.g. TIFF in Chrome: the server's Pillow may still read it
  }
  currentStroke = null;
  history = [{kind: "image", file, picture}];   // a dropped file starts a new drawing
  redraw();
  drawingChanged(true);
}

// Listen on the whole page: a file dropped next to the canvas should not make
// the browser leave the page to open it.
document.addEventListener("dragover", (event) => {
  event.preventDefault();
  dropZone.classList.add("dragging");
});
document.addEventListener("dragleave", (event) => {
  if (event.relatedTarget === null) dropZone.classList.remove("dragging");
});
document.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("dragging");
  useFile(event.dataTransfer.files[0]);
});
fileInput.addEventListener("change", () => {
  useFile(fileInput.files[0]);
  fileInput.value = "";        // the same file may be opened again later
});

// -- asking the server: the throttle ------------------------------------------------

let inFlight = false;          // a request is on its way
let wanted = false;            // the drawing changed since the last request was sent
let timer = null;              // the pending setTimeout that will send it
let lastSentAt = -Infinity;

function drawingChanged(replaced) {
  version += 1;
  if (replaced) epoch += 1;
  if (history.length === 0) {
    wanted = false;
    showEmpty();
    return;
  }
  setStatus("working", "Reading…");
  wanted = true;
  schedule();
}

function schedule() {
  // modelSelect is disabled until GET /api/models has answered: loadModels
  // then asks again for anything drawn in the meantime.
  if (!wanted || inFlight || timer !== null || modelSelect.disabled) return;
  const wait = Math.max(0, lastSentAt + MIN_INTERVAL_MS - performance.now());
  timer = setTimeout(() => {
    timer = null;
    if (wanted && !inFlight && history.length > 0) predict();
  }, wait);
}

function requestBody() {
  // A dropped file, untouched, goes as the file itself (multipart), so that
  // the server sees its full resolution; anything drawn goes as the canvas PNG.
  const last = history[history.length - 1];
  // (The server takes images up to 1 MB: a bigger photo goes as the canvas,
  // the picture scaled down to 280x280, which is plenty for a 28x28 digit.)
  if (last.kind === "image" && !(last.picture && last.file.size > MAX_UPLOAD_BYTES)) {
    const form = new FormData();
    form.append("image", last.file, last.file.name);
    form.append("model", modelSelect.value);
    return {method: "POST", body: form};
  }
  return {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({image: canvas.toDataURL("image/png"), model: modelSelect.value}),
  };
}

async function predict() {
  wanted = false;
  inFlight = true;
  lastSentAt = performance.now();
  const sent = {version, epoch};
  let response = null, answer = null, failure = null;
  try {
    response = await fetch("/api/predict", requestBody());
    answer = await response.json().catch(() => null);
  } catch (err) {
    failure = err;
  }
  inFlight = false;
  const roundTripMs = performance.now() - lastSentAt;

  if (sent.epoch === epoch && history.length > 0) {
    if (failure) {
      setStatus("error", "Cannot reach the server: is `build_network.py serve` still running?");
    } else if (response.status === 422) {
      // The server found no ink (a dot too faint or too small): a hint, not an error.
      showNothingYet((answer && answer.error) || "No digit found: draw a bigger one.");
    } else if (!response.ok || !answer) {
      setStatus("error", (answer && answer.error) || `The server answered ${response.status} ${response.statusText}.`);
    } else {
      showAnswer(answer, roundTripMs);
      const current = sent.version === version && !wanted;
      if (current) {
        setStatus("ready", `${modelLabel(answer.model)} reads a ${answer.digit}.`);
      }
    }
  }
  schedule();                  // the drawing may have changed while we waited
}

// -- showing the answer -------------------------------------------------------------

function setStatus(state, text) {
  // data-state: idle (nothing drawn), working, ready (the answer shown is for
  // the drawing shown), hint, error. The tests wait on it.
  statusLine.dataset.state = state;
  statusLine.textContent = text;
}

function makeBars() {
  barsBox.replaceChildren();
  for (let d = 0; d < 10; d++) {
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.setAttribute("role", "listitem");
    bar.dataset.digit = String(d);
    bar.dataset.probability = "0";
    bar.innerHTML = '<span class="bar-value"></span>' +
                    '<span class="bar-track"><span class="bar-fill"></span></span>' +
                    `<span class="bar-label">${d}</span>`;
    barsBox.appendChild(bar);
  }
}

function setBars(probabilities) {
  const top = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  barsBox.querySelectorAll(".bar").forEach((bar, d) => {
    const p = probabilities ? probabilities[d] : 0;
    bar.dataset.probability = String(p);
    bar.classList.toggle("top", d === top);
    bar.querySelector(".bar-fill").style.height = `${(100 * p).toFixed(1)}%`;
    const shown = !probabilities ? "" : p >= 0.995 ? "100%" : p >= 0.01 ? `${Math.round(100 * p)}%` : "";
    bar.querySelector(".bar-value").textContent = shown;
    bar.setAttribute("aria-label", probabilities ? `${d}: ${(100 * p).toFixed(1)} percent` : `${d}`);
  });
}

function paintGray(targetCtx, rows) {
  // rows: H x W values in [0, 1], drawn white on black like MNIST itself.
  const h = rows.length, w = rows[0].length;
  const pixels = targetCtx.createImageData(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = Math.round(255 * Math.min(1, Math.max(0, rows[y][x])));
      const i = 4 * (y * w + x);
      pixels.data[i] = pixels.data[i + 1] = pixels.data[i + 2] = v;
      pixels.data[i + 3] = 255;
    }
  }
  targetCtx.putImageData(pixels, 0, 0);
}

function blankSeen() {
  seenCtx.fillStyle = "#000000";
  seenCtx.fillRect(0, 0, seenCanvas.width, seenCanvas.height);
}

function showFeatureMaps(maps) {
  if (!maps || maps.length === 0) {
    featureSection.hidden = true;
    return;
  }
  const h = maps[0].length, w = maps[0][0].length;
  // Reuse the small canvases from the last answer when their number and size match.
  const reuse = featureMapsBox.children.length === maps.length &&
                featureMapsBox.firstElementChild.width === w && featureMapsBox.firstElementChild.height === h;
  if (!reuse) {
    featureMapsBox.replaceChildren();
    maps.forEach((_, i) => {
      const small = document.createElement("canvas");
      small.width = w;
      small.height = h;
      small.className = "feature-map";
      small.setAttribute("role", "img");
      small.setAttribute("aria-label", `feature map ${i + 1}`);
      small.title = `filter ${i + 1}`;
      featureMapsBox.appendChild(small);
    });
  }
  maps.forEach((map, i) => paintGray(featureMapsBox.children[i].getContext("2d"), map));
  featureCount.textContent = `(${maps.length} filters, ${h}×${w} each)`;
  featureSection.hidden = false;
}

function formatMs(ms) {
  // One decimal below 10 ms ("0.8"), whole milliseconds above ("12").
  return ms < 9.95 ? ms.toFixed(1) : Math.round(ms).toString();
}

function showAnswer(answer, roundTripMs) {
  const probabilities = answer.probabilities;
  digitOut.textContent = String(answer.digit);
  digitOut.dataset.model = answer.model;
  digitOut.classList.remove("unknown");
  confidenceOut.textContent = `${(100 * probabilities[answer.digit]).toFixed(1)}% sure`;
  setBars(probabilities);
  paintGray(seenCtx, answer.image);
  showFeatureMaps(answer.feature_maps);
  const t = answer.timings_ms || {};
  const parts = ["decode", "preprocess", "predict"].filter((k) => k in t).map((k) => `${k} ${formatMs(t[k])}`);
  if ("total" in t) parts.push(`total ${formatMs(t.total)}`);
  timingsOut.textContent = `server ms: ${parts.join(" · ")}; round trip ${formatMs(roundTripMs)} ms`;
}

function showNothingYet(hint) {
  digitOut.textContent = "?";
  digitOut.classList.add("unknown");
  confidenceOut.innerHTML = "&nbsp;";
  setBars(null);
  blankSeen();
  featureSection.hidden = true;
  timingsOut.innerHTML = "&nbsp;";
  setStatus(history.length === 0 ? "idle" : "hint", hint);
}

function showEmpty() {
  showNothingYet("Draw a digit in the box, or drop an image file on it.");
}

// -- the model picker ------------------------------------------------------------------

function modelLabel(name) {
  return name ? name.toUpperCase() : "The network";
}

function showModelInfo() {
  const model = models[modelSelect.value];
  modelInfo.textContent = model && model.parameters
    ? `${model.parameters.toLocaleString("en-US")} parameters` : "";
}

modelSelect.addEventListener("change", () => {
  const model = models[modelSelect.value];
  showModelInfo();
  // Hide the feature maps at once for a model without them, rather than
  // leaving the previous CNN's maps up until the answer comes.
  if (model && !model.has_feature_maps) featureSection.hidden = true;
  drawingChanged(true);
});

async function loadModels() {
  try {
    const response = await fetch("/api/models");
    const listing = await response.json();
    if (!response.ok) throw new Error(listing.error || response.statusText);
    modelSelect.replaceChildren();
    for (const model of listing.models) {
      models[model.name] = model;
      const option = document.createElement("option");
      option.value = model.name;
      option.textContent = model.description ? `${model.name} · ${model.description}` : model.name;
      modelSelect.appendChild(option);
    }
    modelSelect.value = listing.default || listing.models[0].name;
    modelSelect.disabled = false;
    showModelInfo();
    if (history.length > 0) drawingChanged(true);   // drawn before the list came
  } catch (err) {
    setStatus("error", `Could not list the networks (${err.message}).`);
  }
}

// -- start ------------------------------------------------------------------------------

makeBars();
redraw();
showEmpty();
loadModels();
