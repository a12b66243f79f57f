// The page of florenced: sends the image and task to /v1/tasks/{task} on this
// same origin and draws the answer's regions on the picture. No framework,
// nothing fetched from elsewhere.
"use strict";

// Tableau 10, as the CLI's and the overlay's drawings.
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

let chosen = null; // the image file or pasted blob

function colour(index, label) {
  let slot = index;
  if (label) {
    slot = 0;
    for (const b of new TextEncoder().encode(label)) slot = (slot * 31 + b) >>> 0;
  }
  return PALETTE[slot % PALETTE.length];
}

// Outlines in image pixels with their labels, from a post_process_generation result.
function regions(result) {
  const out = [];
  const add = (points, label) => out.push({ points, label: label || "" });
  const boxes = (list, labels) => (list || []).forEach((b, i) =>
    add([[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]], (labels || [])[i]));
  const flat = (xy) => { const p = []; for (let i = 0; i + 1 < xy.length; i += 2) p.push([xy[i], xy[i + 1]]); return p; };
  if (typeof result !== "object" || result === null) return out;
  boxes(result.bboxes, result.labels || result.bboxes_labels);
  (result.quad_boxes || []).forEach((q, i) => add(flat(q), (result.labels || [])[i]));
  (result.polygons || []).forEach((parts, i) => parts.forEach((p) =>
    add(flat(p), (result.labels || result.polygons_labels || [])[i])));
  return out;
}

function draw(image, result) {
  const canvas = document.getElementById("picture");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0);
  const short = Math.min(canvas.width, canvas.height);
  const line = Math.min(8, Math.max(2, short / 240));
  const px = Math.min(48, Math.max(11, short / 28));
  ctx.font = `${px}px monospace`;
  ctx.textBaseline = "top";
  const all = regions(result);
  all.forEach((r, i) => {
    ctx.strokeStyle = colour(i, r.label);
    ctx.lineWidth = line;
    ctx.beginPath();
    r.points.forEach(([x, y], j) => (j ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath();
    ctx.stroke();
  });
  all.forEach((r, i) => {
    if (!r.label) return;
    const x = Math.min(...r.points.map((p) => p[0]));
    const y = Math.min(...r.points.map((p) => p[1]));
    const w = ctx.measureText(r.label).width + 8;
    const h = px + 8;
    const top = y - h >= 0 ? y - h : y;
    ctx.fillStyle = colour(i, r.label);
    ctx.fillRect(x, top, w, h);
    ctx.fillStyle = "#fff";
    ctx.fillText(r.label, x + 4, top + 4);
  });
}

function show(file) {
  chosen = file;
  const image = new Image();
  image.onload = () => { draw(image, null); URL.revokeObjectURL(image.src); };
  image.src = URL.createObjectURL(file);
}

async function run(event) {
  event.preventDefault();
  const status = document.getElementById("status");
  const answer = document.getElementById("answer");
  status.className = "";
  if (!chosen) { status.textContent = "Choose or paste an image first."; status.className = "error"; return; }
  const task = document.getElementById("task").value;
  const body = new FormData();
  body.append("image", chosen);
  const text = document.getElementById("text").value.trim();
  if (text) body.append("text", text);
  const headers = {};
  const key = document.getElementById("key").value;
  if (key) headers["X-API-Key"] = key;
  status.textContent = "Running " + task + "…";
  let reply, json;
  try {
    reply = await fetch("/v1/tasks/" + encodeURIComponent(task), { method: "POST", body, headers });
    json = await reply.json();
  } catch (e) {
    status.textContent = "No answer: " + e; status.className = "error"; return;
  }
  answer.textContent = JSON.stringify(json, null, 2);
  if (!reply.ok) {
    status.textContent = json.message || json.error || ("HTTP " + reply.status);
    status.className = "error";
    return;
  }
  const result = json.result ? json.result[json.task] : null;
  const image = new Image();
  image.onload = () => {
    draw(image, result);
    URL.revokeObjectURL(image.src);
    status.textContent = `${json.task} in ${json.inference_time_ms} ms`;
    document.body.dataset.answered = json.task;
  };
  image.src = URL.createObjectURL(chosen);
}

document.getElementById("image").addEventListener("change", (e) => {
  if (e.target.files.length) show(e.target.files[0]);
});
document.addEventListener("paste", (e) => {
  const item = [...e.clipboardData.items].find((i) => i.type.startsWith("image/"));
  if (item) show(item.getAsFile());
});
document.getElementById("ask").addEventListener("submit", run);
