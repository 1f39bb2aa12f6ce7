// Opens the hlsproxy page in Debian's Chromium, submits a stream, and reports playback.
// Usage: node play.js <page url> <stream url> <screenshot path> [api key]
// Prints one JSON line: {currentTime, fatal, level, status}.
"use strict";
const { chromium } = require("playwright-core");

async function main() {
  const [pageUrl, streamUrl, screenshot, apiKey] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--autoplay-policy=no-user-gesture-required"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 412, height: 915 } });  // a phone
    const consoleErrors = [];
    page.on("pageerror", (error) => consoleErrors.push(String(error)));
    await page.goto(pageUrl);
    await page.fill("#url", streamUrl);
    if (apiKey) await page.evaluate((key) => { document.getElementById("api-key").value = key; }, apiKey);
    await page.click("#play");
    const deadline = Date.now() + 40000;
    let state = {};
    while (Date.now() < deadline) {
      state = await page.evaluate(() => ({
        currentTime: document.getElementById("video").currentTime,
        fatal: window.playbackState ? window.playbackState.fatal : null,
        level: window.playbackState && window.playbackState.level ? window.playbackState.level.height : null,
        status: document.getElementById("status").textContent,
        proxied: document.getElementById("proxied").value,
      }));
      if (state.fatal || state.currentTime > 3.2) break;
      await page.waitForTimeout(200);
    }
    await page.screenshot({ path: screenshot, fullPage: true });
    state.pageErrors = consoleErrors;
    console.log(JSON.stringify(state));
  } finally {
    await browser.close();
  }
}

main().catch((error) => { console.error(error); process.exit(1); });
