// hlsproxy page: build the proxied URL, offer it to players, and play it here.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const video = $("video");
  const statusLine = $("status");
  let hls = null;

  function say(text, isError) {
    statusLine.textContent = text;
    statusLine.className = isError ? "error" : "";
  }

  function isPlaylist(url) {
    return !/\.(mp4|mkv|webm|mov|m4v|mp3|m4a|ts)(\?|#|$)/i.test(url);
  }

  function proxiedUrl() {
    const url = $("url").value.trim();
    const params = new URLSearchParams({ url: url });
    const headers = {
      referer: $("referer").value.trim(),
      origin: $("origin").value.trim(),
      "user-agent": $("user-agent").value.trim(),
    };
    for (const line of $("extra").value.split("\n")) {
      const at = line.indexOf(":");
      if (at > 0) headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
    }
    for (const [name, value] of Object.entries(headers)) {
      if (value) params.append("h_" + name, value);
    }
    const endpoint = isPlaylist(url) ? "/playlist.m3u8" : "/stream";
    // Behind a reverse proxy the server says which public URL to use (--public-url or
    // X-Forwarded-* from a trusted proxy); otherwise the page's own origin is right.
    const base = document.body.dataset.publicUrl || location.origin;
    return base + endpoint + "?" + params.toString();
  }

  function quoted(text) {
    return "'" + text.replace(/'/g, "'\\''") + "'";
  }

  function offer(link) {
    $("result").hidden = false;
    $("proxied").value = link;
    $("open-vlc").href = "vlc://" + link;
    const type = isPlaylist($("url").value) ? "application/x-mpegURL" : "video/*";
    const rest = link.replace(/^https?:\/\//, "");
    const scheme = link.startsWith("https") ? "https" : "http";
    // MX Player free, with the pro package as the fallback intent.
    $("open-mx").href = "intent://" + rest + "#Intent;scheme=" + scheme + ";type=" + type +
      ";package=com.mxtech.videoplayer.ad;S.browser_fallback_url=" +
      encodeURIComponent("intent://" + rest + "#Intent;scheme=" + scheme + ";type=" + type +
        ";package=com.mxtech.videoplayer.pro;end") + ";end";
    $("cmd-mpv").value = "mpv " + quoted(link);
    $("cmd-ffmpeg").value = "ffmpeg -i " + quoted(link) + " -c copy stream.mkv";
    const m3u = "#EXTM3U\n#EXTINF:-1,Stream\n" + link + "\n";
    $("download").href = "data:audio/x-mpegurl;charset=utf-8," + encodeURIComponent(m3u);
  }

  function explain(data) {
    const words = {
      manifestLoadError: "The playlist could not be loaded (the proxy answered with an error).",
      manifestLoadTimeOut: "The playlist took too long to load.",
      manifestParsingError: "That link did not return an HLS playlist.",
      levelLoadError: "A quality level could not be loaded.",
      fragLoadError: "A video segment could not be loaded.",
      fragLoadTimeOut: "A video segment took too long to load.",
      keyLoadError: "The decryption key could not be loaded.",
      bufferStalledError: "Playback is waiting for data.",
      manifestIncompatibleCodecsError: "This browser cannot play the stream's codecs.",
    };
    const plain = words[data.details] || ("Playback problem: " + data.details);
    const status = data.response && data.response.code ? " (HTTP " + data.response.code + ")" : "";
    return plain + status;
  }

  function loadHlsJs() {
    if (window.Hls) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = document.body.dataset.hlsjsUrl;
      script.onload = resolve;
      script.onerror = () => reject(new Error("hls.js could not be loaded from " + script.src));
      document.head.appendChild(script);
    });
  }

  function apiKey() {
    return $("api-key").value.trim();
  }

  function withKey(link) {
    return apiKey() ? link + "&api_key=" + encodeURIComponent(apiKey()) : link;
  }

  async function play(link) {
    video.hidden = false;
    if (hls) { hls.destroy(); hls = null; }
    if (apiKey()) sessionStorage.setItem("hlsproxy-api-key", apiKey());
    window.playbackState = { fatal: null, level: null };
    if (!isPlaylist($("url").value)) {
      video.src = withKey(link);
      video.play().catch(() => say("Press play to start."));
      return;
    }
    try {
      await loadHlsJs();
    } catch (error) {
      if (!video.canPlayType("application/vnd.apple.mpegurl")) { say(error.message, true); return; }
    }
    if (window.Hls && window.Hls.isSupported()) {
      hls = new window.Hls({
        // The key goes in a header on entry requests only; child URLs are signed.
        xhrSetup: (xhr, url) => {
          if (apiKey() && !url.includes("/p/")) xhr.setRequestHeader("X-API-Key", apiKey());
        },
      });
      hls.on(window.Hls.Events.LEVEL_SWITCHED, (_, data) => {
        const level = hls.levels[data.level];
        window.playbackState.level = level;
        say("Playing " + (level.height ? level.height + "p, " : "") +
            Math.round(level.bitrate / 1000) + " kbps");
      });
      hls.on(window.Hls.Events.ERROR, (_, data) => {
        if (data.fatal) {
          window.playbackState.fatal = data.details;
          say(explain(data), true);
        }
      });
      hls.loadSource(link);
      hls.attachMedia(video);
      hls.on(window.Hls.Events.MANIFEST_PARSED, () => {
        video.muted = true;  // autoplay is allowed muted; the user can unmute
        video.play().catch(() => say("Press play to start."));
      });
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = withKey(link);  // Safari and iOS play HLS natively
      video.play().catch(() => say("Press play to start."));
    } else {
      say("This browser cannot play HLS.", true);
    }
  }

  // Channel-list mode: the /list.m3u link for an IPTV app, and what the list holds.
  function listUrl() {
    const params = new URLSearchParams({ url: $("list-url").value.trim() });
    const group = $("list-group").value.trim();
    const exclude = $("list-exclude").value.trim();
    if (group) params.append("group", group);
    if (exclude) params.append("exclude_group", exclude);
    const base = document.body.dataset.publicUrl || location.origin;
    return base + "/list.m3u?" + params.toString();
  }

  // Reads the proxied list as it streams: counts entries and their groups.
  async function summarize(link) {
    const headers = apiKey() ? { "X-API-Key": apiKey() } : {};
    const response = await fetch(link, { headers: headers });
    if (!response.ok) {
      const text = (await response.text()).trim();
      throw new Error("The proxy answered " + response.status + ": " + text);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const groups = new Map();
    let channels = 0;
    let rest = "";
    const count = (line) => {
      if (!line.startsWith("#EXTINF")) return;
      channels += 1;
      const found = /group-title="([^"]*)"/.exec(line);
      for (const name of (found ? found[1] : "").split(";")) {
        const key = name.trim() || "(no group)";
        groups.set(key, (groups.get(key) || 0) + 1);
      }
    };
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const lines = (rest + decoder.decode(value, { stream: true })).split("\n");
      rest = lines.pop();
      lines.forEach(count);
    }
    count(rest);
    return { channels: channels, groups: groups };
  }

  $("list-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const link = listUrl();
    $("list-result").hidden = false;
    $("list-proxied").value = link;
    $("list-summary").className = "";
    $("list-summary").textContent = "Reading the list…";
    $("list-groups").replaceChildren();
    try {
      const { channels, groups } = await summarize(link);
      $("list-summary").textContent = channels + " channels in " + groups.size + " groups.";
      for (const [name, number] of [...groups.entries()].slice(0, 200)) {
        const item = document.createElement("li");
        item.textContent = name + " (" + number + ")";
        $("list-groups").appendChild(item);
      }
    } catch (error) {
      $("list-summary").className = "error";
      $("list-summary").textContent = error.message;
    }
  });

  $("api-key").value = sessionStorage.getItem("hlsproxy-api-key") || "";
  $("form").addEventListener("submit", (event) => {
    event.preventDefault();
    const link = proxiedUrl();
    offer(link);
    say("Loading…");
    play(link);
  });
  for (const button of document.querySelectorAll("[data-copy], #copy")) {
    button.addEventListener("click", () => {
      const field = $(button.dataset.copy || "proxied");
      field.select();
      (navigator.clipboard ? navigator.clipboard.writeText(field.value) : Promise.reject())
        .then(() => say("Copied."), () => { document.execCommand("copy"); say("Copied."); });
    });
  }
})();
