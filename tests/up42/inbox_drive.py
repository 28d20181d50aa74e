#!/usr/bin/env python3
"""Drives the inbox page in headless Chromium (Selenium, Debian's chromium and chromedriver) for
tests/up42/inbox.rs, which runs the receiver (make serve) and answers this script's requests on its
standard input: it prints `post ID STATUS [xss]` (the test posts a signed delivery and answers
`ok KEY`), `restart` (the test restarts the receiver, answers `ok`), and at the end `passed`.
Any failed check ends it with a traceback and a non-zero exit.

    drive.py ADMIN_URL SCREENSHOT_DIR [--token TOKEN]
"""
import argparse
import json
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys


def ask(line):
    print(line, flush=True)
    answer = sys.stdin.readline().strip()
    assert answer.startswith("ok"), f"{line}: {answer}"
    return answer[2:].strip()


def until(what, check, secs=10):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception:  # the page is changing under us: look again
            pass
        time.sleep(0.05)
    raise AssertionError(f"not within {secs} s: {what}")


def empty(field):
    """Clears a field as a user does (select all, delete), so that the page hears it."""
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)


def rows(driver):
    return [(r.get_attribute("data-key"), r.text) for r in driver.find_elements(By.CSS_SELECTOR, "#events tbody tr")]


def shown(driver, needle):
    return any(needle in text for _, text in rows(driver))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("admin")
    p.add_argument("shots")
    p.add_argument("--token")
    p.add_argument("--forwarder", action="store_true",
                   help="a forwarder runs beside: its routes, the consumers and the refusals")
    a = p.parse_args()

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--window-size=1400,800"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        run(driver, a)
    finally:
        driver.quit()
    print("passed", flush=True)


def side_panel(driver):
    """The forwarder's routes (nginx passes /forward/status to it), the declared consumers with
    their lag, and a refusal counted, each as the side panel shows it."""
    until("the forwarder's route", lambda: "2 delivered" in driver.find_element(By.ID, "routes").text, secs=20)
    until("the consumers", lambda: "forward" in driver.find_element(By.ID, "consumers").text and
          "inbox" in driver.find_element(By.ID, "consumers").text, secs=15)
    options = [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, "#consumer option")]
    assert options == ["forward", "inbox"], options
    ask("post inbox-bad FAILED forged")
    until("the refusal", lambda: "signature_mismatch" in driver.find_element(By.ID, "refusals").text, secs=15)


def requests_made(driver):
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def run(driver, a):
    driver.get(a.admin + "/")
    if a.token:
        # The listener asks for the token: the page says so, takes it, then streams.
        form = until("the token form", lambda: driver.find_element(By.ID, "token-form").is_displayed() and
                     driver.find_element(By.ID, "token-form"))
        driver.find_element(By.ID, "token").send_keys(a.token)
        form.find_element(By.CSS_SELECTOR, "button").click()
    until("the tail is live", lambda: driver.find_element(By.ID, "state").text == "live")

    # A delivery posted after the page loaded appears without a reload, within 2 s.
    posted = time.time()
    key = ask("post inbox-1 FAILED")
    until("inbox-1 listed", lambda: any(k == key for k, _ in rows(driver)), secs=2)
    print(f"# appeared {time.time() - posted:.2f} s after the post", flush=True)
    ask("post inbox-2 SUCCEEDED")
    until("inbox-2 listed", lambda: len(rows(driver)) >= 2)

    if a.token:
        return  # the token's path: asked, taken, streaming
    if a.forwarder:
        return side_panel(driver)

    # A filter hides it and shows it again.
    status = driver.find_element(By.ID, "f-status")
    status.send_keys("SUCCEEDED")
    until("FAILED hidden", lambda: all("FAILED" not in t for _, t in rows(driver)) and rows(driver))
    empty(status)
    until("FAILED shown again", lambda: shown(driver, "FAILED"))
    text = driver.find_element(By.ID, "f-text")
    text.send_keys("j-inbox-2")
    until("the search keeps inbox-2 only", lambda: len(rows(driver)) == 1 and shown(driver, "SUCCEEDED"))
    empty(text)
    until("both again", lambda: len(rows(driver)) >= 2)

    # The detail: its messageId and sender; keyboard moves.
    driver.find_element(By.CSS_SELECTOR, f'#events tbody tr[data-key="{key}"]').click()
    until("the detail", lambda: "inbox-1" in driver.find_element(By.ID, "d-json").text)
    envelope = driver.find_element(By.ID, "d-envelope").text
    assert "up42" in envelope and "inbox-1" in envelope, envelope
    driver.find_element(By.TAG_NAME, "body").send_keys("k")
    until("k moves up", lambda: "inbox-2" in driver.find_element(By.ID, "d-json").text)
    driver.find_element(By.TAG_NAME, "body").send_keys("j")
    until("j moves down", lambda: "inbox-1" in driver.find_element(By.ID, "d-json").text)

    # Acknowledge up to it (confirmed): marked as acknowledged by the default consumer, and still
    # on the page and in the dump (history is not consumption).
    driver.find_element(By.ID, "ack").click()
    until("the confirmation", lambda: driver.switch_to.alert).accept()

    def acked_cell(k):
        return driver.find_element(By.CSS_SELECTOR, f'#events tbody tr[data-key="{k}"] td.acked').text

    until("inbox-1 marked acknowledged", lambda: acked_cell(key) == "default")
    assert shown(driver, "FAILED") and shown(driver, "SUCCEEDED"), rows(driver)
    newer = [k for k, t in rows(driver) if "SUCCEEDED" in t][0]
    assert acked_cell(newer) == "", acked_cell(newer)
    dump = urllib.request.urlopen(a.admin + "/dump-webhooks").read().decode()
    assert "inbox-1" in dump and "inbox-2" in dump, dump
    # A key is a number in the journal's store, an entry id ("ms-seq") in Redis.
    assert str(json.loads(dump.splitlines()[-1])["acknowledged"]["default"]) == key, dump

    # The receiver restarts: the page reconnects and shows the next delivery.
    ask("restart")
    key3 = ask("post inbox-3 RUNNING")
    until("inbox-3 after the restart", lambda: any(k == key3 for k, _ in rows(driver)), secs=30)
    driver.get_log("browser")  # the failed reads while it was down are expected

    # Script in every string field runs nothing and fetches nothing.
    key4 = ask("post inbox-4 FAILED xss")
    until("the payload listed", lambda: any(k == key4 for k, _ in rows(driver)))
    driver.find_element(By.CSS_SELECTOR, f'#events tbody tr[data-key="{key4}"]').click()
    until("its detail", lambda: "onerror" in driver.find_element(By.ID, "d-json").text)
    time.sleep(1)
    try:
        alert = driver.switch_to.alert
        raise AssertionError(f"an alert fired: {alert.text}")
    except NoAlertPresentException:
        pass
    assert not driver.find_elements(By.CSS_SELECTOR, "main img, main script, main a[href]"), "markup from the event"
    origin = a.admin.rstrip("/")
    urls = requests_made(driver)
    assert urls and all(u.startswith(origin + "/") for u in urls), [u for u in urls if not u.startswith(origin)]

    # Screenshots, light and dark.
    key5 = ask("post inbox-5 FULFILLED")
    until("inbox-5 listed", lambda: any(k == key5 for k, _ in rows(driver)))
    driver.find_element(By.CSS_SELECTOR, f'#events tbody tr[data-key="{key5}"]').click()
    time.sleep(2.5)  # the side panel's stats are read again 2 s after events arrive
    driver.save_screenshot(f"{a.shots}/inbox-light.png")
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                           {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    time.sleep(0.3)
    driver.save_screenshot(f"{a.shots}/inbox-dark.png")
    # A phone: one column, the list first.
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    driver.set_window_size(390, 844)
    time.sleep(0.3)
    lst = driver.find_element(By.CSS_SELECTOR, "section.list").rect
    side = driver.find_element(By.CSS_SELECTOR, "aside.side").rect
    assert lst["width"] <= 390 and side["y"] > lst["y"], (lst, side)
    driver.save_screenshot(f"{a.shots}/inbox-phone.png")
    # Two answers the page expects: no forwarder's status here, no icon.
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"
              and "/forward/status" not in e["message"] and "favicon" not in e["message"]]
    assert not errors, errors


if __name__ == "__main__":
    main()
