// The review desk's one script: naming the reviewer on every page, and the keyboard review.
"use strict";
const csrf = document.querySelector("meta[name=csrf]").content;

async function post(url, body) {
  const response = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json",
                                     "X-CSRF-Token": csrf}, body: JSON.stringify(body)});
  let answer = {};
  try { answer = await response.json(); } catch (e) { answer = {error: "the server did not answer"}; }
  return [response.ok, answer];
}

const rename = document.getElementById("rename");
if (rename) {
  rename.addEventListener("click", async () => {
    const name = prompt("Your name, for the verdicts you give in this browser session:");
    if (!name) return;
    const [ok, answer] = await post("/reviewer", {name: name});
    if (ok) document.getElementById("reviewer").textContent = answer.reviewer;
    else alert(answer.error);
  });
}

const data = document.getElementById("review-data");
if (data) review(JSON.parse(data.textContent));

function review(state) {
  const frames = state.frames, undo = [];
  let index = state.start, blink = null, stretch = "zscale", zoom = null, cursor = null, blinked = false;
  const image = document.getElementById("frame"), stars = document.getElementById("stars");
  const message = document.getElementById("message");
  const byId = new Map(frames.map(f => [f.id, f]));

  function say(text, bad) { message.textContent = text; message.className = bad ? "bad" : ""; }
  function line(parent, text, cls) {
    const p = document.createElement("p"); p.textContent = text; if (cls) p.className = cls; parent.appendChild(p);
  }
  function value(v, unit) { return v === null || v === undefined ? "-" : v.toLocaleString("en") + (unit || ""); }
  function reference(f) { return f.reference === null ? null : state.references[String(f.reference)] || null; }

  // The zoom's centre is kept in the pixels of one grid ("own": the frame's, "reference": its reference's);
  // the current frame's shift carries it from one to the other.
  function centre(f, grid) {
    if (zoom.grid === grid || !f.shift) return [zoom.x, zoom.y];
    const sign = grid === "reference" ? 1 : -1;
    return [zoom.x + sign * f.shift.dx, zoom.y + sign * f.shift.dy];
  }
  // The picture of frame `id` on a grid: its own pixels, or resampled onto its reference's grid.
  function src(id, grid, f) {
    const tail = stretch === "zscale" ? "" : "stretch=" + stretch;
    if (zoom) {
      const [x, y] = centre(f, grid);
      return "/frame/" + id + "/crop.png?x=" + Math.round(x) + "&y=" + Math.round(y) + "&w=" + zoom.w + "&h=" + zoom.h +
             (grid === "reference" && id !== f.reference ? "&grid=reference" : "") + (tail ? "&" + tail : "");
    }
    if (grid === "reference" && id !== f.reference) return "/frame/" + id + "/aligned.png" + (tail ? "?" + tail : "");
    return "/frame/" + id + ".png" + (tail ? "?" + tail : "");
  }

  function picture(f) {
    // What the main image shows now: [frame id, grid, caption, class].
    const ref = reference(f), unaligned = "no verified transform: blinking unaligned";
    if ((blink === "reference" || blink === "aligned") && !ref) {
      blink = null; say("no alignment reference for " + f.label + ": run obsdb align first", true);
    }
    if (blink === "reference") {
      const same = f.reference === f.id;
      return [f.reference, same || !f.aligned ? "own" : "reference",
              "BLINK: reference " + ref.label + " (band " + (ref.band || "-") + ")" +
              (same ? ": this frame is the reference" : f.aligned ? ", its own grid · b: " + f.label + " on it" : " · " + unaligned),
              "blink"];
    }
    if (blink === "aligned") {
      if (f.reference === f.id) return [f.id, "own", f.label + " is the reference: its own grid · b: the same", "aligned"];
      if (!f.aligned) return [f.id, "own", f.label + " · " + unaligned + " against " + ref.label, "blink"];
      return [f.id, "reference", f.label + " resampled onto the grid of reference " + ref.label +
              " (run " + f.shift.run + ") · b: the reference", "aligned"];
    }
    if (blink === "previous") {
      const prev = frames[Math.max(index - 1, 0)];
      if (prev.id !== f.id) return [prev.id, "own", "BLINK: showing " + prev.label + " (previous), not " + f.label, "blink"];
    }
    return [f.id, "own", f.file, ""];
  }

  function show() {
    const f = frames[index];
    const [id, grid, caption, cls] = picture(f);
    image.src = src(id, grid, f);
    image.className = cls + (zoom ? " zoom" : "");
    if (zoom) { image.style.width = zoom.cssW + "px"; image.style.height = zoom.cssH + "px"; }
    else { image.style.width = ""; image.style.height = ""; }
    image.dataset.grid = grid;
    image.dataset.shows = id;
    document.getElementById("caption").textContent = caption +
      (zoom ? " · 1:1 at x " + Math.round(centre(f, grid)[0] + 1) + ", y " + Math.round(centre(f, grid)[1] + 1) : "");
    stars.style.display = "";
    stars.src = "/frame/" + f.id + "/stars.png";
    const facts = document.getElementById("facts");
    facts.textContent = "";
    line(facts, "frame " + f.label + " · " + (index + 1) + " of " + frames.length + (f.time ? " · " + f.time + " UTC" : "") +
         (f.reviewed ? " · reviewed" : " · not reviewed"));
    const why = [...new Set(f.reasons.map(r => r.split(":")[0]))];
    line(facts, f.status + (why.length ? " (" + why.join(", ") + ")" : ""), "status " + f.status);
    if (f.chain && f.chain !== f.status) line(facts, f.chain, "chain");
    line(facts, "FWHM " + value(f.fwhm, " px") + " (minor axis " + value(f.minor_fwhm, " px") + ") · elongation " +
         value(f.elongation));
    line(facts, "background " + value(f.background, " ADU") + " · transparency " + value(f.transparency) +
         " · " + value(f.stars) + " stars");
    line(facts, f.shift ? "shift dx " + f.shift.dx + ", dy " + f.shift.dy + " px (run " + f.shift.run + ", " +
         (f.shift.method || "?") + ")" : "no shift yet");
    details(f.id);
  }
  // Fetch ahead in the browser too, once the frame shown has loaded (not competing with it): the next and
  // previous frames are then in the browser's cache when the reviewer moves.
  image.addEventListener("load", () => {
    if (zoom) return;
    for (const k of [index + 1, index - 1]) if (frames[k]) { new Image().src = src(frames[k].id, "own", frames[k]); }
    // Once the reviewer blinks, the frames around are fetched on the reference's grid too (drawn on the
    // server while the reviewer looks), so the next blink does not wait for the drawing.
    if (blinked) for (const k of [index, index + 1]) {
      const g = frames[k];
      if (g && g.aligned && g.id !== g.reference) new Image().src = src(g.id, "reference", g);
    }
  });
  image.addEventListener("error", () => {
    if (image.dataset.grid === "reference") say("no verified transform for this frame: b shows it unaligned", true);
  });
  image.addEventListener("mousemove", (event) => {
    const box = image.getBoundingClientRect();
    cursor = [(event.clientX - box.left) / box.width, (event.clientY - box.top) / box.height];
  });
  image.addEventListener("mouseleave", () => { cursor = null; });
  image.addEventListener("click", (event) => {
    // In the zoom, a click centres the window there.
    if (!zoom) return;
    const box = image.getBoundingClientRect(), f = frames[index], grid = image.dataset.grid;
    const [x, y] = centre(f, grid);
    const scale = zoom.w / box.width;
    zoom = {...zoom, grid: grid, x: x + (event.clientX - box.left - box.width / 2) * scale,
            y: y - (event.clientY - box.top - box.height / 2) * scale};
    show();
  });

  function startZoom() {
    const f = frames[index], grid = image.dataset.grid || "own", box = image.getBoundingClientRect();
    const shape = grid === "reference" ? (reference(f) || {}).shape : (byId.get(Number(image.dataset.shows)) || f).shape;
    const [ny, nx] = shape || [0, 0];
    const at = cursor || [0.5, 0.5];
    // Row 0 is at the bottom of the picture, as in ds9.
    const dpr = window.devicePixelRatio || 1;
    zoom = {grid: grid, x: at[0] * nx - 0.5, y: (1 - at[1]) * ny - 0.5,
            cssW: Math.round(box.width), cssH: Math.round(box.height),
            w: Math.min(4096, Math.round(box.width * dpr)), h: Math.min(4096, Math.round(box.height * dpr))};
    say("1:1 zoom: one screen pixel per detector pixel · click to move · z or Esc to leave");
  }

  function nextUnreviewed() {
    for (let step = 1; step <= frames.length; step++) {
      const k = (index + step) % frames.length;
      if (!frames[k].reviewed) return k;
    }
    return -1;
  }

  async function details(id) {
    const response = await fetch("/frame/" + id + ".json");
    if (!response.ok || frames[index].id !== id) return;
    const facts = await response.json();
    // For tests and benchmarks: the panel now shows this frame's facts.
    document.getElementById("desk").dataset.shown = id;
    const tags = document.getElementById("tags"), history = document.getElementById("history");
    tags.textContent = ""; history.textContent = "";
    if (facts.tags.length) line(tags, "tags", "head");
    for (const t of facts.tags)
      line(tags, t.name + " (" + t.source + ", " + (t.author || "?") + ", " + t.at + ")" +
           (t.reason ? ": " + t.reason : "") + (t.active ? "" : " · retracted " + t.retracted), t.active ? "" : "retracted");
    if (facts.runs.length) line(history, "shift history", "head");
    for (const run of facts.runs) {
      line(history, "run " + run.run + " " + run.method + (run.current ? " (current)" : "") + ": dx " + run.dx +
           ", dy " + run.dy + " px onto " + (run.reference || "?") + ", " + run.created_at + " by " + (run.author || "?"));
      for (const s of run.steps)
        line(history, "  step " + s.stage + " " + s.kind + "/" + (s.method || "-") + ": " + s.dx + ", " + s.dy +
             (s.matched ? " · " + s.matched + " stars, rms " + s.rms + " px" : ""));
    }
  }

  async function verdict(body, done) {
    if (state.readOnly) { say("read-only: verdicts are not recorded", true); return false; }
    const [ok, answer] = await post("/verdict", body);
    if (!ok) { say(answer.error, true); return false; }
    // What the catalog says the frame's status is now, never a guess from the key pressed.
    const f = byId.get(body.frame_id);
    f.status = answer.status; f.reasons = answer.reasons; f.chain = answer.chain; f.reviewed = answer.reviewed;
    say(done + " by " + answer.author + " · " + f.label + " is now " + answer.status +
        (answer.changed ? " (was " + answer.previous + ")" : " (status unchanged)") +
        (answer.chain && answer.chain !== answer.status ? " · " + answer.chain : ""));
    message.dataset.frame = f.id; message.dataset.status = answer.status;
    message.dataset.changed = answer.changed ? "yes" : "no";
    message.dataset.count = String(Number(message.dataset.count || 0) + 1);
    return true;
  }

  document.addEventListener("keydown", async (event) => {
    if (event.target.tagName === "INPUT" || event.ctrlKey || event.metaKey || event.altKey) return;
    const f = frames[index], key = event.key;
    let advance = false;
    if (key === "ArrowRight" || key === "j") { index = Math.min(index + 1, frames.length - 1); blink = null; }
    else if (key === "ArrowLeft" || key === "k") { index = Math.max(index - 1, 0); blink = null; }
    else if (key === "n") {
      const k = nextUnreviewed();
      if (k < 0) { say("every frame here has a reviewer's verdict"); return; }
      index = k; blink = null;
    }
    else if (key === "b") { blink = blink === "reference" ? "aligned" : "reference"; blinked = true; }
    else if (key === "p") { blink = blink === "previous" ? null : "previous"; }
    else if (key === "Escape") { blink = null; zoom = null; }
    else if (key === "z") { if (zoom) zoom = null; else startZoom(); }
    else if (key === "s") { stretch = stretch === "zscale" ? "asinh" : "zscale"; say("stretch " + stretch); }
    else if (key === "a") {
      if (await verdict({frame_id: f.id, action: "accept"}, f.label + " accept")) { undo.push([f.id, "accept"]); advance = true; }
    } else if ((key >= "1" && key <= "5") || key === "r") {
      const tag = key === "r" ? "reject" : state.tags[Number(key) - 1];
      if (await verdict({frame_id: f.id, action: "reject", tag: tag}, f.label + " " + tag)) { undo.push([f.id, tag]); advance = true; }
    } else if (key === "6") {
      const reason = prompt("Why is " + f.label + " rejected?");
      if (reason && await verdict({frame_id: f.id, action: "reject", tag: "reject", reason: reason}, f.label + " reject")) {
        undo.push([f.id, "reject"]); advance = true;
      }
    } else if (key === "u") {
      if (!undo.length) { say("nothing to undo", true); return; }
      const [id, tag] = undo.pop();
      index = frames.findIndex(x => x.id === id); blink = null;
      if (!await verdict({frame_id: id, action: "undo", tag: tag}, byId.get(id).label + " " + tag + " undone")) undo.push([id, tag]);
    } else { return; }
    event.preventDefault();
    if (advance && index < frames.length - 1) { index += 1; blink = null; }
    show();
  });
  stars.addEventListener("error", () => { stars.style.display = "none"; });
  show();
}
