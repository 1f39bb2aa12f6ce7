"""Headless Chromium uses the page's channel-list mode: link, channel count, groups."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from twisted.trial.unittest import TestCase

from tests.integration.harness import start_origin, start_proxy
from tests.integration.origin import Body
from tests.tools import run_process

from .test_browser import ARTIFACTS, HERE, require_driver

# Fills the list form, waits for the summary, prints one JSON line.
_DRIVER = r"""
const { chromium } = require("playwright-core");
(async () => {
  const [pageUrl, listUrl, group, apiKey, screenshot] = process.argv.slice(1);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
  try {
    // waitForFunction polls with eval, which the page's CSP (no 'unsafe-eval') forbids to
    // page scripts; the driver is not a page script. The page itself runs under its CSP.
    const page = await browser.newPage({ viewport: { width: 412, height: 915 }, bypassCSP: true });
    const pageErrors = [];
    page.on("pageerror", (error) => pageErrors.push(String(error)));
    await page.goto(pageUrl);
    if (apiKey) {  // the key field sits in a closed <details> of the stream form
      await page.evaluate((key) => { document.getElementById("api-key").value = key; }, apiKey);
    }
    await page.fill("#list-url", listUrl);
    if (group) await page.fill("#list-group", group);
    await page.click("#list-go");
    await page.waitForFunction(() => {
      const text = document.getElementById("list-summary").textContent;
      return text && !text.startsWith("Reading");
    }, null, { timeout: 20000 });
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({
      proxied: await page.inputValue("#list-proxied"),
      summary: await page.textContent("#list-summary"),
      groups: await page.$$eval("#list-groups li", (items) => items.map((i) => i.textContent)),
      pageErrors: pageErrors,
    }));
  } finally {
    await browser.close();
  }
})().catch((error) => { console.error(error); process.exit(1); });
"""

LIST = b"""#EXTM3U
#EXTINF:-1 group-title="News",One
#EXTVLCOPT:http-user-agent=UA
http://cdn.example/one.m3u8
#EXTINF:-1 group-title="Sports;News",Two
http://cdn.example/two.ts|Referer=https://r.example/
#EXTINF:-1 group-title="Movies",Three
http://cdn.example/three.m3u8
"""


class ListPageTests(TestCase):
    timeout = 120

    async def _use_page(self, group: str = "", api_key: str = "") -> dict[str, object]:
        require_driver()
        origin, recording = start_origin(self, Body(LIST, b"text/plain"))
        proxy = start_proxy(self, api_key=api_key)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / f"list-page{'-' + group if group else ''}.png"
        out, err, code = await run_process(
            "node", ["-e", _DRIVER, f"{proxy}/", f"{origin}/list.m3u", group, api_key, str(shot)],
            seconds=60, path=str(HERE),
        )  # fmt: skip
        if code != 0:
            raise AssertionError(f"driver exited {code}: {err.decode(errors='replace')[-3000:]}")
        state: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
        self.assertEqual(state["pageErrors"], [])
        link = urlsplit(str(state["proxied"]))
        self.assertEqual(f"{link.scheme}://{link.netloc}{link.path}", f"{proxy}/list.m3u")
        self.assertEqual(parse_qs(link.query)["url"], [f"{origin}/list.m3u"])
        self.assertNotIn("api_key", link.query)
        self.assertEqual(recording.paths(), ["/list.m3u"])  # read through the proxy only
        return state

    async def test_list_mode_gives_the_link_the_channel_count_and_the_groups(self) -> None:
        state = await self._use_page()
        self.assertEqual(state["summary"], "3 channels in 3 groups.")
        self.assertEqual(state["groups"], ["News (2)", "Sports (1)", "Movies (1)"])

    async def test_group_filter_and_api_key(self) -> None:
        state = await self._use_page(group="news", api_key="k-9")
        self.assertEqual(parse_qs(urlsplit(str(state["proxied"])).query)["group"], ["news"])
        self.assertEqual(state["summary"], "2 channels in 2 groups.")
