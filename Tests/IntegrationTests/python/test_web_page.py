"""The web chat at / (issue 11, item 7) in a real browser: headless Chromium from Debian, driven
by Selenium. Two browser sessions chat; they see unread counts, read receipts, typing and
presence change, and a dropped connection resumes with what was missed. Each view is saved as a
screenshot (WEB_SCREENSHOTS, default .build/screenshots at the project's root)."""
import os
import pathlib
import shutil
import time
import uuid

import pexpect
import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import JavascriptException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from conftest import Server
from test_socketio_chat import connect
from test_terminal_clients import spawn

ROOT = pathlib.Path(__file__).resolve().parents[3]
SCREENSHOTS = pathlib.Path(os.environ.get("WEB_SCREENSHOTS", ROOT / ".build" / "screenshots"))
DESKTOP = (1200, 780)
PHONE = (390, 780)


def chromium_paths():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail("the web page tests need Debian's chromium and chromium-driver (make test installs them)")
    return browser, driver


@pytest.fixture
def browsers():
    browser, driver_path = chromium_paths()
    opened = []

    def open_browser(size=DESKTOP):
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                         f"--window-size={size[0]},{size[1]}", "--lang=en-US"):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        driver.set_window_size(*size)
        opened.append(driver)
        return driver

    yield open_browser
    for driver in opened:
        driver.quit()


def wait(driver, condition, timeout=10, message=""):
    def check(_):
        try:
            return condition()
        except (StaleElementReferenceException, JavascriptException):
            return False
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(check, message)


def text(driver, css):
    return driver.find_element(By.CSS_SELECTOR, css).text


def visible(driver, css):
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return bool(found) and found[0].is_displayed()


def screenshot(driver, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    time.sleep(0.2)  # let the last render settle
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def log_in(driver, server, email, password, username=None):
    driver.get(server.url + "/")
    wait(driver, lambda: visible(driver, "#login-form"))
    if username:
        driver.find_element(By.ID, "login-toggle").click()
        driver.find_element(By.ID, "login-username").send_keys(username)
    driver.find_element(By.ID, "login-email").send_keys(email)
    driver.find_element(By.ID, "login-password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    wait(driver, lambda: visible(driver, "#chat-view") and text(driver, "#me-name") == (username or text(driver, "#me-name")))
    # Connected: the banner is gone once the CONNECT is answered.
    wait(driver, lambda: driver.execute_script("return app.socket && app.socket.connected"), message="socket connected")


def conversation_item(driver, peer_id):
    return driver.find_element(By.CSS_SELECTOR, f'#conversation-list li[data-peer="{peer_id}"]')


def badge(driver, peer_id):
    found = conversation_item(driver, peer_id).find_elements(By.CSS_SELECTOR, ".badge")
    return found[0].text if found else ""


def messages(driver):
    return [(item.get_attribute("class"), item.text) for item in driver.find_elements(By.CSS_SELECTOR, "#messages li[data-id], #messages li.mine, #messages li.theirs")]


def type_and_send(driver, message):
    box = driver.find_element(By.ID, "message-input")
    box.send_keys(message)
    box.send_keys(Keys.ENTER)


def test_the_page_and_its_files_are_served_with_a_strict_policy(server):
    page = requests.get(server.url + "/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"] and page.headers["X-Content-Type-Options"] == "nosniff"
    assert '<script src="/chat.js"' in page.text and "http" not in page.text.replace("http-equiv", "")  # nothing from elsewhere
    for path, kind in (("/chat.js", "text/javascript"), ("/chat.css", "text/css")):
        r = requests.get(server.url + path, timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(kind) and len(r.content) > 1000
    assert requests.head(server.url + "/", timeout=10).status_code == 200
    r = requests.post(server.url + "/", timeout=10)
    assert r.status_code == 405 and "error" in r.json()
    assert requests.get(server.url + "/chat.jsx", timeout=10).status_code == 404


def test_two_people_chat_in_two_browsers(server, browsers):
    tag = uuid.uuid4().hex[:6]
    ann_email, bob_name = f"ann-{tag}@example.com", f"bob{tag}"
    bob_id, bob_email, bob_token = server.user(bob_name)
    ann_browser, bob_browser = browsers(), browsers()

    # Refusals are shown where they happened.
    ann_browser.get(server.url + "/")
    wait(ann_browser, lambda: visible(ann_browser, "#login-form"))
    screenshot(ann_browser, "01-login")
    ann_browser.find_element(By.ID, "login-email").send_keys(bob_email)
    ann_browser.find_element(By.ID, "login-password").send_keys("wrong password")
    ann_browser.find_element(By.ID, "login-submit").click()
    wait(ann_browser, lambda: visible(ann_browser, "#login-error"))
    assert text(ann_browser, "#login-error") == "Invalid credentials"
    ann_browser.find_element(By.ID, "login-email").clear()
    ann_browser.find_element(By.ID, "login-password").clear()

    # Ann registers in the page; bob logs in.
    log_in(ann_browser, server, ann_email, "password1", username=f"ann{tag}")
    ann_id = ann_browser.execute_script("return app.session.user.id")
    log_in(bob_browser, server, bob_email, "password1")
    assert bob_browser.find_element(By.ID, "no-conversations").is_displayed()

    # Ann finds bob by the start of his name, opens the conversation and writes.
    ann_browser.find_element(By.ID, "search").send_keys(bob_name[:6])
    wait(ann_browser, lambda: ann_browser.find_elements(By.CSS_SELECTOR, f'#search-results li[data-user="{bob_id}"]'))
    ann_browser.find_element(By.CSS_SELECTOR, f'#search-results li[data-user="{bob_id}"]').click()
    wait(ann_browser, lambda: text(ann_browser, "#peer-name") == bob_name)
    wait(ann_browser, lambda: text(ann_browser, "#peer-status") == "online", message="bob is online")
    type_and_send(ann_browser, "Hi Bob! <b>not bold</b>")
    type_and_send(ann_browser, "Are you there?")
    wait(ann_browser, lambda: [t for _, t in messages(ann_browser)] and all("✓" in t for _, t in messages(ann_browser))
         and len(messages(ann_browser)) == 2, message="both stored")
    assert all(t.endswith("✓") and "✓✓" not in t for _, t in messages(ann_browser)), messages(ann_browser)

    # Bob sees the conversation with two unread.
    wait(bob_browser, lambda: badge(bob_browser, ann_id) == "2", message="two unread")
    # A new peer's name comes with the list, asked for again when the first message arrives.
    wait(bob_browser, lambda: f"ann{tag}" in conversation_item(bob_browser, ann_id).text)
    assert "Are you there?" in conversation_item(bob_browser, ann_id).text
    assert bob_browser.title == "(2) Chat"
    screenshot(bob_browser, "02-conversations-with-unread")

    # He opens it: the messages are read, the badge goes, ann's ticks turn ✓✓.
    conversation_item(bob_browser, ann_id).click()
    wait(bob_browser, lambda: len(messages(bob_browser)) == 2)
    assert "<b>not bold</b>" in messages(bob_browser)[0][1], "text, never markup"
    wait(bob_browser, lambda: badge(bob_browser, ann_id) == "", message="badge cleared")
    wait(ann_browser, lambda: all("✓✓" in t for _, t in messages(ann_browser)), message="ann sees read")

    # Bob types: ann sees it, in the header and in her list; it stops when he sends.
    bob_browser.find_element(By.ID, "message-input").send_keys("Yes, here")
    wait(ann_browser, lambda: visible(ann_browser, "#typing") and text(ann_browser, "#typing") == f"{bob_name} is typing…")
    assert "typing…" in conversation_item(ann_browser, bob_id).text
    screenshot(ann_browser, "03-chat-typing-and-read")
    bob_browser.find_element(By.ID, "message-input").send_keys(Keys.ENTER)
    wait(ann_browser, lambda: any(t.startswith("Yes, here") for _, t in messages(ann_browser)))
    wait(ann_browser, lambda: not visible(ann_browser, "#typing"), message="typing ends with the message")
    # Ann has the conversation open and the page visible: it is read at once.
    wait(bob_browser, lambda: "✓✓" in messages(bob_browser)[-1][1], message="bob sees ann read his reply")

    # Ann's connection drops; bob writes from another device meanwhile; ann's page resumes and
    # shows every missed message once, in order.
    ann_browser.execute_script("""
        window.holdReconnect = true;
        const socket = app.socket, open = socket.open.bind(socket);
        socket.open = () => window.holdReconnect ? setTimeout(() => socket.open(), 100) : open();
        window.pidBefore = socket.pid;
        socket.ws.close();""")
    wait(ann_browser, lambda: ann_browser.execute_script("return !app.socket.connected"))
    bob_phone = connect(server, bob_token, ["websocket"])
    try:
        for n in range(3):
            assert bob_phone.call("send_message", {"to": ann_id, "message": f"missed {n}"}, timeout=10)["ok"]
    finally:
        bob_phone.disconnect()
    ann_browser.execute_script("window.holdReconnect = false")
    wait(ann_browser, lambda: ann_browser.execute_script("return app.socket.connected && app.socket.pid === window.pidBefore"),
         message="resumed the same session")
    wait(ann_browser, lambda: [t.split("\n")[0] for _, t in messages(ann_browser)][-3:] == ["missed 0", "missed 1", "missed 2"])
    time.sleep(0.5)
    texts = [t.split("\n")[0] for _, t in messages(ann_browser)]
    assert texts == ["Hi Bob! <b>not bold</b>", "Are you there?", "Yes, here", "missed 0", "missed 1", "missed 2"], texts

    # Bob leaves: ann sees him go offline (after the grace period), with a last seen time.
    bob_browser.quit()
    wait(ann_browser, lambda: text(ann_browser, "#peer-status").startswith("last seen"), timeout=20, message="bob offline")
    screenshot(ann_browser, "04-chat-after-resume-peer-offline")


def test_a_phone_sized_window_shows_the_list_then_the_conversation(server, browsers):
    tag = uuid.uuid4().hex[:6]
    ann_id, _, ann_token = server.user(f"ann{tag}")
    bob_id, bob_email, _ = server.user(f"bob{tag}")
    ann = connect(server, ann_token, ["websocket"])
    try:
        for message in ("Lunch today?", "The usual place at noon"):
            assert ann.call("send_message", {"to": bob_id, "message": message}, timeout=10)["ok"]
    finally:
        ann.disconnect()
    phone = browsers(PHONE)
    log_in(phone, server, bob_email, "password1")
    wait(phone, lambda: badge(phone, ann_id) == "2")
    assert not visible(phone, "#conversation"), "one pane at a time"
    screenshot(phone, "05-phone-conversations")
    conversation_item(phone, ann_id).click()
    wait(phone, lambda: len(messages(phone)) == 2 and visible(phone, "#back") and not visible(phone, "#sidebar"))
    type_and_send(phone, "See you there")
    wait(phone, lambda: messages(phone)[-1][1].startswith("See you there") and "✓" in messages(phone)[-1][1])
    screenshot(phone, "06-phone-chat")
    phone.find_element(By.ID, "back").click()
    wait(phone, lambda: visible(phone, "#sidebar") and badge(phone, ann_id) == "")
    # A refusal from the server is said: a message too long for it.
    conversation_item(phone, ann_id).click()
    phone.execute_script("document.getElementById('message-input').removeAttribute('maxlength')")
    phone.execute_script("const box = document.getElementById('message-input'); box.value = 'x'.repeat(200000);")
    phone.find_element(By.ID, "message-input").send_keys(Keys.ENTER)
    wait(phone, lambda: visible(phone, "#banner") and text(phone, "#banner").startswith("Not sent:"))
    assert "⚠" in messages(phone)[-1][1]


def test_a_terminal_and_a_browser_see_the_same_conversation(server, browsers):
    """Done means both kinds of client agree: ann in chat-cli-a, bob in the page."""
    tag = uuid.uuid4().hex[:6]
    ann_id, ann_email, _ = server.user(f"ann{tag}")
    bob_id, bob_email, _ = server.user(f"bob{tag}")
    bob = browsers()
    log_in(bob, server, bob_email, "password1")
    ann = spawn(server, "chat-cli-a", ann_email, bob_email)
    try:
        ann.sendline("hello from the terminal")
        ann.expect("you: hello from the terminal ✓")
        wait(bob, lambda: badge(bob, ann_id) == "1" and f"ann{tag}" in conversation_item(bob, ann_id).text)
        conversation_item(bob, ann_id).click()
        # Seen in the page, read in the terminal.
        ann.expect(f"✓✓ bob{tag} read “hello from the terminal”")
        bob.find_element(By.ID, "message-input").send_keys("typing in the page")
        ann.expect(rf"bob{tag} \(typing…\)>")
        bob.find_element(By.ID, "message-input").send_keys(Keys.ENTER)
        ann.expect(f"bob{tag}: typing in the page")
        # Shown in the terminal is read: the page's message gets ✓✓.
        wait(bob, lambda: messages(bob)[-1][1].startswith("typing in the page") and "✓✓" in messages(bob)[-1][1])
        ann.send("and in the terminal")
        wait(bob, lambda: visible(bob, "#typing") and text(bob, "#typing") == f"ann{tag} is typing…")
        ann.send("\r")
        wait(bob, lambda: messages(bob)[-1][1].startswith("and in the terminal"))
        ann.sendline("/who")
        ann.expect(f"peer: bob{tag} .* — online")
        ann.sendline("/quit")
        ann.expect(pexpect.EOF)
        wait(bob, lambda: text(bob, "#peer-status").startswith("last seen"), timeout=20, message="ann offline")
    finally:
        ann.close(force=True)


def test_logging_out_in_one_browser_logs_the_account_out_in_the_other(server, browsers):
    _, email, _ = server.user("ann")
    laptop, phone = browsers(), browsers(PHONE)
    for driver in (laptop, phone):
        log_in(driver, server, email, "password1")
    old_token = phone.execute_script("return app.session.token")
    laptop.find_element(By.ID, "logout").click()
    wait(laptop, lambda: visible(laptop, "#login-form"))
    # The other device's socket is closed by the server, with the reason, and its page says so.
    wait(phone, lambda: visible(phone, "#login-form") and "You were logged out" in text(phone, "#login-error"),
         message="the phone's page went back to the login form")
    assert phone.execute_script("return localStorage.length") == 0
    assert requests.get(server.url + "/api/conversations", headers={"Authorization": f"Bearer {old_token}"}, timeout=10).status_code == 403
    screenshot(phone, "logged-out-elsewhere")
    log_in(phone, server, email, "password1")  # and back in


def test_an_open_page_renews_its_token_before_it_expires(database, browsers):
    # Tokens of 302 s: the page asks for a fresh one 5 minutes before expiry, i.e. at once.
    short = Server(os.environ["CHAT_SERVER_BIN"], database, {"TOKEN_LIFETIME_SECONDS": "302"})
    try:
        _, email, _ = short.user("ann")
        driver = browsers()
        log_in(driver, short, email, "password1")
        first = driver.execute_script("return app.session.token")
        wait(driver, lambda: driver.execute_script("return app.session.token") != first, timeout=15, message="the token was renewed")
        renewed = driver.execute_script("return JSON.parse(localStorage.getItem(localStorage.key(0))).token")
        assert renewed == driver.execute_script("return app.session.token")
        assert requests.get(short.url + "/api/conversations", headers={"Authorization": f"Bearer {renewed}"}, timeout=10).status_code == 200
        assert driver.execute_script("return app.socket.connected")
    finally:
        assert short.stop() == 0, "".join(short.output)


def test_blocking_from_the_conversation_header(server, browsers):
    tag = uuid.uuid4().hex[:6]
    ann_id, ann_email, _ = server.user(f"ann{tag}")
    bob_id, _, bob_token = server.user(f"bob{tag}")
    bob = connect(server, bob_token, ["websocket"])
    try:
        assert bob.call("send_message", {"to": ann_id, "message": "Hello from bob"}, timeout=10)["ok"]
        page = browsers()
        log_in(page, server, ann_email, "password1")
        wait(page, lambda: badge(page, bob_id) == "1")
        conversation_item(page, bob_id).click()
        wait(page, lambda: visible(page, "#block") and text(page, "#block") == "Block")
        page.find_element(By.ID, "block").click()
        wait(page, lambda: text(page, "#block") == "Unblock", message="the button turned to Unblock")
        assert text(page, "#peer-status") == "" and not conversation_item(page, bob_id).find_elements(By.CSS_SELECTOR, ".online")
        refused = bob.call("send_message", {"to": ann_id, "message": "are you there?"}, timeout=10)
        assert refused == {"ok": False, "error": "the message could not be delivered"}
        type_and_send(page, "bye")
        wait(page, lambda: visible(page, "#banner") and "unblock them" in text(page, "#banner"))
        screenshot(page, "blocked")
        # Reloaded, the page still knows whom it blocks; unblocking lets bob through again.
        page.refresh()
        wait(page, lambda: visible(page, "#conversation-list") and conversation_item(page, bob_id))
        conversation_item(page, bob_id).click()
        wait(page, lambda: text(page, "#block") == "Unblock")
        page.find_element(By.ID, "block").click()
        wait(page, lambda: text(page, "#block") == "Block")
        assert bob.call("send_message", {"to": ann_id, "message": "back again"}, timeout=10)["ok"]
        wait(page, lambda: messages(page)[-1][1].startswith("back again"))
    finally:
        bob.disconnect()
