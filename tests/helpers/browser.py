"""Headless Chromium for the page tests (Debian's chromium and chromium-driver, driven by selenium)."""
import os
from contextlib import contextmanager

import pytest

CHROMIUM, CHROMEDRIVER = '/usr/bin/chromium', '/usr/bin/chromedriver'


@contextmanager
def headless_chromium(profile):
    """A selenium Chrome driver of a headless Chromium 1100 x 800 whose profile is the folder `profile`;
    skips the test when Chromium or selenium is not installed."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip('not installed: Debian\'s chromium and chromium-driver packages, which the README\'s set-up '
                    'command installs (apt-get install chromium chromium-driver)')
    webdriver = pytest.importorskip('selenium.webdriver')
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync',
                 '--window-size=1100,800', f'--user-data-dir={profile}']:
        options.add_argument(flag)
    browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    try:
        browser.set_page_load_timeout(30)
        yield browser
    finally:
        browser.quit()
