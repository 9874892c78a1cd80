// vlmrm labeller: one frame at a time, answered with y / n / s (or the buttons); ← goes back.
// Every answer is POSTed at once; the server writes the labels file atomically before replying.
// Each write carries this session's token, which the server wrote into the page (no other site knows it).
"use strict";

const TOKEN = document.querySelector('meta[name="vlmrm-token"]').getAttribute("content");

const state = {
  frames: [],
  labels: {},
  position: null, // index into frames, or null when every frame is answered
  pending: 0,
  saves: Promise.resolve(),
};

const $ = (id) => document.getElementById(id);

function firstUnlabelledAfter(start) {
  const n = state.frames.length;
  for (let k = 0; k < n; k++) {
    const i = (start + k) % n;
    if (!(state.frames[i] in state.labels)) return i;
  }
  return null;
}

function counts() {
  const c = { yes: 0, no: 0, skip: 0 };
  for (const frame of state.frames) {
    const answer = state.labels[frame];
    if (answer in c) c[answer] += 1;
  }
  return c;
}

function render() {
  const n = state.frames.length;
  const done = state.position === null;
  $("done").hidden = !done;
  for (const id of ["yes", "no", "skip"]) $(id).disabled = done;
  if (!done) {
    const src = `/frames/${state.position}`;
    if ($("frame").getAttribute("src") !== src) $("frame").setAttribute("src", src);
    $("frame").dataset.index = String(state.position);
    $("position").textContent = `Frame ${state.position + 1} of ${n} — ${state.frames[state.position]}`;
    const answer = state.labels[state.frames[state.position]];
    $("current").textContent = answer ? `Labelled: ${answer}` : "";
    $("current").className = answer || "";
  } else {
    $("position").textContent = `${n} of ${n} frames answered`;
    $("current").textContent = "";
  }
  $("back").disabled = n === 0 || state.position === 0;
  const c = counts();
  const labelled = c.yes + c.no + c.skip;
  $("progress").textContent = `${labelled} / ${n} labelled · ${c.yes} yes · ${c.no} no · ${c.skip} skip`;
  $("progress").dataset.labelled = String(labelled);
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function save(frame, answer) {
  state.pending += 1;
  setStatus("Saving…", false);
  // Chain the requests so answers reach the server in the order they were given.
  state.saves = state.saves.then(async () => {
    try {
      const response = await fetch("/api/label", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Vlmrm-Token": TOKEN },
        body: JSON.stringify({ frame, answer }),
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new Error(body.error || `HTTP ${response.status}`);
      }
      state.pending -= 1;
      if (state.pending === 0) setStatus("All answers saved ✓", false);
      document.body.dataset.pending = String(state.pending);
    } catch (error) {
      state.pending -= 1;
      delete state.labels[frame];
      document.body.dataset.pending = String(state.pending);
      setStatus(`Could not save the answer for ${frame}: ${error.message}. Is the server still running?`, true);
      render();
    }
  });
  document.body.dataset.pending = String(state.pending);
}

function answer(value) {
  if (state.position === null) return;
  const frame = state.frames[state.position];
  state.labels[frame] = value;
  save(frame, value);
  state.position = firstUnlabelledAfter(state.position + 1);
  render();
}

function back() {
  const n = state.frames.length;
  if (n === 0) return;
  if (state.position === null) state.position = n - 1;
  else if (state.position > 0) state.position -= 1;
  render();
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key.toLowerCase();
  if (key === "y") answer("yes");
  else if (key === "n") answer("no");
  else if (key === "s") answer("skip");
  else if (key === "arrowleft" || key === "backspace" || key === "b") back();
  else return;
  event.preventDefault();
});

$("yes").addEventListener("click", () => answer("yes"));
$("no").addEventListener("click", () => answer("no"));
$("skip").addEventListener("click", () => answer("skip"));
$("back").addEventListener("click", back);

window.addEventListener("beforeunload", (event) => {
  if (state.pending > 0) {
    event.preventDefault();
    event.returnValue = "";
  }
});

async function start() {
  try {
    const response = await fetch("/api/state", { cache: "no-store" });
    const data = await response.json();
    state.frames = data.frames;
    state.labels = data.labels;
    state.position = data.position;
    $("sentence").textContent = data.sentence;
    document.title = `Label: ${data.sentence}`;
    setStatus(`Answers are saved to ${data.labels_file}`, false);
    render();
    document.body.dataset.ready = "true";
  } catch (error) {
    setStatus(`Could not reach the labelling server: ${error.message}`, true);
  }
}

start();
