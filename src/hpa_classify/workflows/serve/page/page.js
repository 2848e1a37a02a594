// The hpa serve page: pick four channel files, POST them to /v1/predict, draw the result.
// Text from files or the server is only ever set with textContent, never parsed as HTML.
"use strict";

const CHANNELS = ["red", "green", "blue", "yellow"];
const SHOWN_AT_FIRST = 10;
const state = { files: {}, model: null, result: null, sample: "sample", showAll: false };
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function headers() {
  const token = $("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setStatus(text) {
  $("status").textContent = text;
}

// ---------------------------------------------------------------- the model line

async function loadModel() {
  const response = await fetch("v1/model", { headers: headers() });
  if (response.status === 401) {
    $("token-row").hidden = false;
    $("model-line").textContent = "This server needs an access token: enter it below.";
    return;
  }
  if (!response.ok) {
    $("model-line").textContent = "The model description could not be read (" + response.status + ").";
    return;
  }
  const model = await response.json();
  state.model = model;
  $("token-row").hidden = !model.token_required;
  $("multichannel-note").hidden = model.uploads.multichannel_file;
  const folds = model.n_models > 1 ? ", mean of " + model.n_models + " models" : "";
  $("model-line").textContent =
    "Model " + model.model + folds + " from the run \u201c" + model.run + "\u201d: images resized to " +
    model.input.size + " px, " + model.input.tta + " test-time views averaged, one threshold per class " +
    model.thresholds.source + ".";
}

// ---------------------------------------------------------------- choosing files

function channelOf(name) {
  const stem = name.toLowerCase().replace(/(\.[a-z0-9]+)+$/, "");
  const match = stem.match(/(?:^|[_\-. ])(red|green|blue|yellow)$/);
  return match ? match[1] : null;
}

function sampleName() {
  const green = state.files.green || Object.values(state.files)[0];
  if (!green) return "sample";
  return green.name.replace(/(\.[A-Za-z0-9]+)+$/, "").replace(/[_\-. ](red|green|blue|yellow)$/i, "") || "sample";
}

function addFiles(list) {
  showError("");
  const unnamed = [];
  for (const file of list) {
    const channel = channelOf(file.name);
    if (channel) state.files[channel] = file;
    else unnamed.push(file.name);
  }
  if (unnamed.length === 1 && list.length === 1 && state.model && !state.model.uploads.multichannel_file) {
    showError(unnamed[0] + ": one multi-channel file is not read yet; choose the four channel files " +
      "(names ending in _red, _green, _blue, _yellow), or put the file in a channel's row below.");
  } else if (unnamed.length) {
    showError("Not named by channel (…_red, _green, _blue, _yellow): " + unnamed.join(", ") +
      ". Put each in its row below.");
  }
  refreshSlots();
}

function refreshSlots() {
  for (const row of document.querySelectorAll("#slots tr")) {
    const file = state.files[row.dataset.channel];
    const cell = row.querySelector(".file");
    cell.textContent = file ? file.name + " (" + Math.ceil(file.size / 1024) + " KB)" : "no file";
    cell.classList.toggle("ready", Boolean(file));
    cell.classList.toggle("muted", !file);
  }
  const ready = CHANNELS.every((c) => state.files[c]);
  $("classify").disabled = !ready;
  setStatus(ready ? "Ready." : "Missing: " + CHANNELS.filter((c) => !state.files[c]).join(", ") + ".");
}

// ---------------------------------------------------------------- classifying

async function classify() {
  showError("");
  const form = new FormData();
  for (const channel of CHANNELS) form.append(channel, state.files[channel], state.files[channel].name);
  $("classify").disabled = true;
  setStatus("Classifying…");
  try {
    const response = await fetch("v1/predict?composite=true", { method: "POST", body: form, headers: headers() });
    const body = await response.json().catch(() => ({ detail: "the server answered " + response.status }));
    if (!response.ok) {
      if (response.status === 401) $("token-row").hidden = false;
      showError(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));
      setStatus("");
      return;
    }
    state.result = body;
    state.sample = sampleName();
    if (!state.model) await loadModel();
    drawResult();
    setStatus("Done.");
  } catch (err) {
    showError("The server could not be reached: " + err.message);
    setStatus("");
  } finally {
    $("classify").disabled = !CHANNELS.every((c) => state.files[c]);
  }
}

// ---------------------------------------------------------------- the result

function drawResult() {
  const r = state.result;
  $("result").hidden = false;
  $("composite").src = r.composite || "";
  $("image-size").textContent = " · " + r.image.width + " × " + r.image.height + " px";
  const verdict = $("verdict");
  verdict.replaceChildren(document.createTextNode(r.names.length > 1 ? "Predicted classes: " : "Predicted class: "));
  r.names.forEach((name, i) => {
    if (i) verdict.append(document.createTextNode(", "));
    verdict.append(el("span", "name", name));
  });
  if (r.fallback) verdict.append(el("span", "muted", " (no class reached its threshold: the most probable one)"));
  drawBars();
  drawCells(r.cells);
  drawActivationMaps(r.activation_maps);
  $("result").scrollIntoView({ block: "start" });
}

function drawBars() {
  // predicted classes first, then the others; each group by probability
  const sorted = [...state.result.classes].sort(
    (a, b) => (b.predicted - a.predicted) || (b.probability - a.probability));
  const predicted = sorted.filter((c) => c.predicted).length;
  const shown = state.showAll ? sorted : sorted.slice(0, Math.max(SHOWN_AT_FIRST, predicted));
  const list = $("bars");
  list.replaceChildren();
  for (const c of shown) {
    const item = el("li", c.predicted ? "yes" : "");
    item.dataset.classId = c.id;
    item.append(el("span", "cls", c.name));
    const track = el("span", "track");
    const fill = el("span", "fill");
    fill.style.width = (100 * c.probability).toFixed(1) + "%";
    const tick = el("span", "tick");
    tick.style.left = (100 * c.threshold).toFixed(1) + "%";
    tick.title = "threshold " + c.threshold.toFixed(2);
    track.append(fill, tick);
    track.setAttribute("role", "img");
    track.setAttribute("aria-label", c.name + ": probability " + c.probability.toFixed(2) +
      ", threshold " + c.threshold.toFixed(2) + (c.predicted ? ", predicted" : ""));
    item.append(track, el("span", "num", c.probability.toFixed(2) + " / " + c.threshold.toFixed(2)));
    list.append(item);
  }
  $("toggle-all").textContent = state.showAll ? "Show the top classes only" : "Show all 28 classes";
}

function drawCells(cells) {
  const overlay = $("cells-overlay");
  const show = Boolean(cells && cells.outline);
  overlay.hidden = !show || !$("show-cells").checked;
  $("cells-toggle").hidden = !show;
  if (show) {
    overlay.src = cells.outline;
    $("cell-count").textContent = String(cells.count);
  }
}

function drawActivationMaps(maps) {
  const box = $("cams");
  box.replaceChildren();
  $("cam-section").hidden = !(maps && maps.length);
  for (const m of maps || []) {
    const figure = el("figure");
    const img = el("img");
    img.src = m.image;
    img.alt = "Class activation map for " + m.name;
    figure.append(img, el("figcaption", "", m.name));
    box.append(figure);
  }
}

// ---------------------------------------------------------------- downloads

function csvField(value) {
  const text = String(value);
  return /[",\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = el("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function downloadCsv() {
  const rows = [["sample", "class_id", "class", "probability", "threshold", "predicted"]];
  for (const c of state.result.classes) {
    rows.push([state.sample, c.id, c.name, c.probability.toFixed(6), c.threshold.toFixed(4), c.predicted ? 1 : 0]);
  }
  download(state.sample + "_classes.csv", "text/csv", rows.map((r) => r.map(csvField).join(",")).join("\n") + "\n");
}

function downloadJson() {
  const { composite, ...result } = state.result;
  const files = Object.fromEntries(CHANNELS.map((c) => [c, state.files[c] ? state.files[c].name : null]));
  const doc = { sample: state.sample, files, model: state.model, result };
  download(state.sample + "_result.json", "application/json", JSON.stringify(doc, null, 2) + "\n");
}

// ---------------------------------------------------------------- wiring

function wire() {
  const drop = $("drop");
  drop.addEventListener("click", (e) => { if (e.target.tagName !== "LABEL") $("pick").click(); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("pick").click(); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    addFiles([...e.dataTransfer.files]);
  });
  $("pick").addEventListener("change", (e) => { addFiles([...e.target.files]); e.target.value = ""; });
  for (const row of document.querySelectorAll("#slots tr")) {
    row.querySelector("input").addEventListener("change", (e) => {
      if (e.target.files.length) state.files[row.dataset.channel] = e.target.files[0];
      e.target.value = "";
      refreshSlots();
    });
  }
  $("classify").addEventListener("click", classify);
  $("toggle-all").addEventListener("click", () => { state.showAll = !state.showAll; drawBars(); });
  $("download-csv").addEventListener("click", downloadCsv);
  $("download-json").addEventListener("click", downloadJson);
  $("show-cells").addEventListener("change", () => drawCells(state.result && state.result.cells));
  $("token").addEventListener("change", loadModel);
  refreshSlots();
  loadModel();
}

document.addEventListener("DOMContentLoaded", wire);
