"""The http service in a real browser: headless Chromium driven by
Selenium (Debian's chromium, chromium-driver and python3-selenium, which
scripts/setup.sh installs). A user signs in and reads the settings; an
administrator disables IMAP4 for a user, whose next IMAP login is then
refused, and stops and starts a service. A screenshot of every page, at a
desktop and a phone width, goes to BUILD/test-output/http/ (build/ by
default)."""

import imaplib
import shutil

import pytest

from conftest import BUILD, tls_context
from http_client import ADMIN_PASSWORD, PASSWORD, web  # noqa: F401

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = BUILD / "test-output" / "http"

pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="chromium is not installed (scripts/setup.sh installs it)")

SIZES = (("desktop", 1280, 1000), ("phone", 390, 1500))


@pytest.fixture
def browser():
    # chromium is here: a missing driver or binding is a failure, not a skip
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--ignore-certificate-errors", "--window-size=1280,1000"):
        options.add_argument(arg)
    driver_path = shutil.which("chromedriver")
    assert driver_path, "chromedriver is missing: install chromium-driver (scripts/setup.sh)"
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def shoot(driver, name):
    for label, width, height in SIZES:
        driver.set_window_size(width, height)
        driver.save_screenshot(str(SHOTS / f"{name}-{label}.png"))
    driver.set_window_size(*SIZES[0][1:])


def base(inst):
    return f"https://127.0.0.1:{inst.port('http', tls=True)}"


def sign_in(driver, inst, user, password, shot=None):
    from selenium.webdriver.common.by import By

    driver.get(base(inst) + "/login")
    if shot:
        shoot(driver, shot)
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    submit(driver, driver.find_element(By.CSS_SELECTOR, "form.card button[type=submit]"))


def submit(driver, button):
    """Click a form's button and wait for the page it leads to."""
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element("tag name", "html")
    button.click()

    def replaced(d):
        try:
            old.tag_name
            return False
        except Exception:  # stale: the new page is there
            return d.execute_script("return document.readyState") == "complete"
    WebDriverWait(driver, 60).until(replaced)


def text(driver, element_id):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def test_user_signs_in_and_reads_settings(web, browser):
    web.ctl("settings", "set", "imap4",
            "external-connection-settings=mail.example.test:993:SSL, mail.example.test:143:TLS",
            check=True)
    sign_in(browser, web, "alice", "wrong", shot="login")
    assert "not correct" in text(browser, "login-error")
    shoot(browser, "login-failed")
    sign_in(browser, web, "alice", PASSWORD)
    assert browser.current_url.endswith("/settings")
    assert text(browser, "imap4-server") == "mail.example.test"
    assert text(browser, "imap4-port") == "993"
    assert text(browser, "imap4-encryption") == "SSL/TLS"
    assert text(browser, "imap4-user") == "alice"
    assert text(browser, "pop3-port") == str(web.port("pop3", tls=True))
    assert text(browser, "smtp-port") == str(web.port("submission", tls=True))
    assert text(browser, "imap4-status") == "Enabled"
    shoot(browser, "settings")
    # the login cookie is out of reach of scripts
    assert all(c["httpOnly"] and c["secure"] for c in browser.get_cookies())
    # a user is kept out of the admin centre
    browser.get(base(web) + "/admin")
    assert "403" in browser.title
    shoot(browser, "forbidden")


def test_admin_disables_imap4_and_the_next_imap_login_is_refused(web, browser):
    from selenium.webdriver.common.by import By

    sign_in(browser, web, "boss", ADMIN_PASSWORD)
    assert browser.current_url.endswith("/admin")
    shoot(browser, "admin-home")
    browser.get(base(web) + "/admin/users")
    shoot(browser, "admin-users")
    browser.get(base(web) + "/admin/user?name=alice")
    assert text(browser, "imap4-state") == "Enabled"
    shoot(browser, "admin-user")
    submit(browser, browser.find_element(By.ID, "imap4-toggle"))
    assert text(browser, "imap4-state") == "Disabled"
    assert text(browser, "pop3-state") == "Enabled"
    shoot(browser, "admin-user-imap4-disabled")
    with pytest.raises(imaplib.IMAP4.error, match="IMAP4 is disabled"):
        with imaplib.IMAP4_SSL("127.0.0.1", web.port("imap4", tls=True),
                               ssl_context=tls_context(), timeout=30) as m:
            m.login("alice", PASSWORD)
    # and back on
    submit(browser, browser.find_element(By.ID, "imap4-toggle"))
    assert text(browser, "imap4-state") == "Enabled"
    with imaplib.IMAP4_SSL("127.0.0.1", web.port("imap4", tls=True),
                           ssl_context=tls_context(), timeout=30) as m:
        m.login("alice", PASSWORD)
        m.logout()
    # the other admin pages render
    for path, name in (("/admin/settings?service=imap4", "admin-settings"),
                       ("/admin/test", "admin-test")):
        browser.get(base(web) + path)
        shoot(browser, name)
    browser.find_element(By.ID, "test-user").send_keys("alice")
    browser.find_element(By.ID, "test-password").send_keys(PASSWORD)
    submit(browser, browser.find_element(By.ID, "run-test"))
    assert "Every step succeeded" in text(browser, "test-summary")
    shoot(browser, "admin-test-result")


def test_admin_stops_and_starts_a_service(web, browser):
    from selenium.webdriver.common.by import By

    sign_in(browser, web, "boss", ADMIN_PASSWORD)
    browser.get(base(web) + "/admin/services")
    assert text(browser, "state-pop3") == "running"
    shoot(browser, "admin-services")
    submit(browser, browser.find_element(By.ID, "stop-pop3"))
    assert text(browser, "state-pop3") == "stopped"
    assert web.status("pop3")[1]["pop3"]["state"] == "stopped"
    shoot(browser, "admin-services-pop3-stopped")
    submit(browser, browser.find_element(By.ID, "start-pop3"))
    assert text(browser, "state-pop3") == "running"
    assert web.status("pop3")[1]["pop3"]["state"] == "running"
    # sign out
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form.signout button"))
    assert browser.current_url.endswith("/login")
