"""The admin in Chinese: by the browser's language and by the switch."""

from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.support.admin import ADMIN, LOGIN, verified_client
from tests.support.translations import ensure_compiled_messages

pytestmark = pytest.mark.django_db


def test_the_admin_speaks_chinese_when_the_browser_asks_for_it(world):
    ensure_compiled_messages()
    client = verified_client(world.officer.user, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    html = client.get(ADMIN).content.decode()
    assert '<html lang="zh-hans"' in html
    assert "合规工作台" in html and "每日查询与命中" in html
    login_page = Client(HTTP_ACCEPT_LANGUAGE="zh-CN").get(LOGIN).content.decode()
    assert "验证码" in login_page


def test_the_language_switch_changes_the_language(world, officer):
    ensure_compiled_messages()
    assert '<html lang="en"' in officer.get(ADMIN).content.decode()
    response = officer.post("/i18n/setlang/", {"language": "zh-hans", "next": ADMIN})
    assert response.status_code == 302 and response["Location"] == ADMIN
    html = officer.get(ADMIN).content.decode()
    assert '<html lang="zh-hans"' in html and "合规工作台" in html
    officer.post("/i18n/setlang/", {"language": "en", "next": ADMIN})
    assert "Compliance desk" in officer.get(ADMIN).content.decode()


def test_the_locale_source_is_committed_and_not_only_a_binary():
    po = Path(settings.BASE_DIR) / "registry/locale/zh_Hans/LC_MESSAGES/django.po"
    assert po.exists()
    gitignore = (Path(settings.BASE_DIR) / ".gitignore").read_text()
    assert "registry/locale/*/LC_MESSAGES/*.mo" in gitignore
