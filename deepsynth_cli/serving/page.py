"""The page at `/`: paste text or drop a file, see the pages the model read beside its summary.

Self-contained (no CDN, no build step): inline CSS and script, allowed by its own Content-Security-Policy. The
page itself is public; it calls the same API as any client, with the key typed into its key field when the
server has one (kept in the page only, never stored).
"""

from __future__ import annotations

PAGE_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)

INDEX_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>deepsynth</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
  header { padding: 12px 24px; background: #1d2330; color: #fff; }
  header small { color: #aab; margin-left: 8px; }
  main { display: grid; grid-template-columns: minmax(320px, 1fr) minmax(320px, 1fr); gap: 24px; padding: 24px; }
  section { background: #fff; border-radius: 8px; padding: 16px; box-shadow: 0 1px 3px #0002; }
  textarea { width: 100%; min-height: 220px; box-sizing: border-box; font: inherit; }
  #drop { border: 2px dashed #99a; border-radius: 8px; padding: 18px; text-align: center; margin: 10px 0; }
  #drop.over { background: #eef; }
  .row { display: flex; gap: 12px; flex-wrap: wrap; align-items: center; margin: 8px 0; }
  input[type=text], input[type=password], input[type=number] { padding: 4px 6px; }
  button { padding: 8px 18px; font: inherit; cursor: pointer; }
  #summary { white-space: pre-wrap; font-size: 16px; min-height: 2em; }
  #error { color: #b00020; white-space: pre-wrap; }
  #stats { color: #556; font-size: 13px; }
  #pages { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 12px; }
  #pages img { width: 260px; border: 1px solid #ccd; background: #fff; }
</style>
</head>
<body>
<header><strong>deepsynth</strong><small id="model">summaries from pictures of pages</small></header>
<main>
<section>
  <label for="text">Paste a document</label>
  <textarea id="text" placeholder="Paste the text to summarise..."></textarea>
  <div id="drop">or drop a file here (PNG, JPEG, WebP, PDF, .txt, .md)<br>
    <input id="file" type="file" accept=".png,.jpg,.jpeg,.webp,.pdf,.txt,.md"></div>
  <div class="row">
    <label>language <input id="language" type="text" value="und" size="5"></label>
    <label>max tokens <input id="max_new_tokens" type="number" value="128" min="1" max="1024"></label>
    <label>API key <input id="key" type="password" autocomplete="off" size="18" placeholder="if required"></label>
  </div>
  <div class="row"><button id="submit" type="button">Summarize</button><span id="busy"></span></div>
</section>
<section>
  <h3>Summary</h3>
  <div id="summary"></div>
  <div id="error"></div>
  <div id="stats"></div>
  <div id="pages"></div>
</section>
</main>
<script>
(() => {
  const $ = (id) => document.getElementById(id);
  let dropped = null;
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files.length) { dropped = e.dataTransfer.files[0]; $("busy").textContent = dropped.name; }
  });
  $("file").addEventListener("change", () => { dropped = $("file").files[0] || null; });

  function headers() {
    const key = $("key").value.trim();
    return key ? { "Authorization": "Bearer " + key } : {};
  }

  function show(result) {
    $("summary").textContent = result.summary || "(empty summary)";
    const t = result.timing;
    const parts = [result.pages_rendered + " page(s)", result.vision_tokens + " vision tokens"];
    if (result.compression) parts.push(result.compression.toFixed(2) + "x compression");
    parts.push(t.total_ms.toFixed(0) + " ms (batch of " + t.batch_size + ")");
    $("stats").textContent = parts.join(" \\u00b7 ");
    const pages = $("pages");
    pages.replaceChildren();
    (result.page_images || []).forEach((b64, i) => {
      const img = document.createElement("img");
      img.src = "data:image/png;base64," + b64;
      img.alt = "page " + (i + 1);
      pages.appendChild(img);
    });
  }

  async function submit() {
    $("error").textContent = ""; $("summary").textContent = ""; $("stats").textContent = "";
    $("pages").replaceChildren();
    $("busy").textContent = "working...";
    const options = { max_new_tokens: Number($("max_new_tokens").value) || 128 };
    const language = $("language").value.trim() || "und";
    let response;
    try {
      if (dropped) {
        const form = new FormData();
        form.append("file", dropped);
        form.append("language", language);
        form.append("options", JSON.stringify(options));
        form.append("return_pages", "true");
        response = await fetch("/v1/summarize/file", { method: "POST", headers: headers(), body: form });
      } else {
        response = await fetch("/v1/summarize", {
          method: "POST",
          headers: Object.assign({ "Content-Type": "application/json" }, headers()),
          body: JSON.stringify({ text: $("text").value, language, options, return_pages: true }),
        });
      }
      const body = await response.json();
      if (!response.ok) { $("error").textContent = response.status + " " + body.error + ": " + body.message; }
      else { show(body); }
    } catch (error) {
      $("error").textContent = String(error);
    } finally {
      $("busy").textContent = ""; dropped = null; $("file").value = "";
    }
  }
  $("submit").addEventListener("click", submit);
})();
</script>
</body>
</html>
"""
