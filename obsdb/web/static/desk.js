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
  let index = state.start, blink = null, stretch = "zscale";
  const image = document.getElementById("frame"), stars = document.getElementById("stars");
  const message = document.getElementById("message");
  const byId = new Map(frames.map(f => [f.id, f]));

  function say(text, bad) { message.textContent = text; message.className = bad ? "bad" : ""; }
  function src(id) { return "/frame/" + id + ".png" + (stretch === "zscale" ? "" : "?stretch=" + stretch); }
  function line(parent, text, cls) {
    const p = document.createElement("p"); p.textContent = text; if (cls) p.className = cls; parent.appendChild(p);
  }
  function value(v, unit) { return v === null || v === undefined ? "-" : v.toLocaleString("en") + (unit || ""); }

  function show() {
    const f = frames[index];
    const shown = blink === "reference" ? byId.get(f.reference) || frames[0]
                : blink === "previous" ? frames[Math.max(index - 1, 0)] : f;
    image.src = src(shown.id);
    image.className = shown.id !== f.id ? "blink" : "";
    document.getElementById("caption").textContent = shown.id !== f.id
      ? "BLINK: showing " + shown.label + " (" + blink + "), not " + f.label : f.file;
    stars.style.display = "";
    stars.src = "/frame/" + f.id + "/stars.png";
    const facts = document.getElementById("facts");
    facts.textContent = "";
    line(facts, "frame " + f.label + " · " + (index + 1) + " of " + frames.length + (f.time ? " · " + f.time + " UTC" : ""));
    const why = [...new Set(f.reasons.map(r => r.split(":")[0]))];
    line(facts, f.status + (why.length ? " (" + why.join(", ") + ")" : ""), "status " + f.status);
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
    for (const k of [index + 1, index - 1]) if (frames[k]) { new Image().src = src(frames[k].id); }
  });

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
    const f = byId.get(body.frame_id);
    f.status = answer.status; f.reasons = answer.reasons;
    say(done + " by " + answer.author);
    return true;
  }

  document.addEventListener("keydown", async (event) => {
    if (event.target.tagName === "INPUT" || event.ctrlKey || event.metaKey || event.altKey) return;
    const f = frames[index], key = event.key;
    let advance = false;
    if (key === "ArrowRight" || key === "j") { index = Math.min(index + 1, frames.length - 1); blink = null; }
    else if (key === "ArrowLeft" || key === "k") { index = Math.max(index - 1, 0); blink = null; }
    else if (key === "b") { blink = blink === "reference" ? null : "reference"; }
    else if (key === "p") { blink = blink === "previous" ? null : "previous"; }
    else if (key === "s") { stretch = stretch === "zscale" ? "asinh" : "zscale"; say("stretch " + stretch); }
    else if (key === "a") {
      if (await verdict({frame_id: f.id, action: "accept"}, f.label + " accepted")) { undo.push([f.id, "accept"]); advance = true; }
    } else if (key >= "1" && key <= "5") {
      const tag = state.tags[Number(key) - 1];
      if (await verdict({frame_id: f.id, action: "reject", tag: tag}, f.label + " " + tag)) { undo.push([f.id, tag]); advance = true; }
    } else if (key === "6") {
      const reason = prompt("Why is " + f.label + " rejected?");
      if (reason && await verdict({frame_id: f.id, action: "reject", tag: "reject", reason: reason}, f.label + " rejected")) {
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
