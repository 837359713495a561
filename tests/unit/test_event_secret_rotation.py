"""Rotating the intake's secrets in their files takes effect without a restart."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from primebridge.config import EventsConfig
from primebridge.entrypoints.amazon_event_auth import EventCredentials, Unauthorized


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_rotated_basic_password_is_picked_up_and_the_old_one_refused(tmp_path: Path) -> None:
    secret = tmp_path / "bwp-password"
    secret.write_text("first")
    clock = Clock()
    creds = EventCredentials(EventsConfig(basic_username="bwp", basic_password=f"file:{secret}",
                                          secret_reload_seconds=30), clock=clock)
    assert creds.check(basic("bwp", "first")) == "basic:bwp"

    secret.write_text("second")
    clock.now += 10                                     # not yet re-read: the remembered header still passes
    assert creds.check(basic("bwp", "first")) == "basic:bwp"
    clock.now += 25
    with pytest.raises(Unauthorized):
        creds.check(basic("bwp", "first"))
    assert creds.check(basic("bwp", "second")) == "basic:bwp"


def test_a_rotated_oauth_secret_issues_new_tokens_and_refuses_the_old_ones(tmp_path: Path) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("s1")
    clock = Clock()
    creds = EventCredentials(EventsConfig(oauth_client_id="bwp", oauth_client_secret=f"file:{secret}",
                                          secret_reload_seconds=30), clock=clock)
    old = creds.issue("bwp", "s1")["access_token"]
    assert creds.check(f"Bearer {old}") == "oauth:bwp"

    secret.write_text("s2")
    clock.now += 31
    with pytest.raises(Unauthorized):
        creds.issue("bwp", "s1")
    with pytest.raises(Unauthorized):
        creds.check(f"Bearer {old}")
    new = creds.issue("bwp", "s2")["access_token"]
    assert creds.check(f"Bearer {new}") == "oauth:bwp"


def test_an_unreadable_secret_file_keeps_the_secrets_that_worked(tmp_path: Path) -> None:
    secret = tmp_path / "bwp-password"
    secret.write_text("first")
    clock = Clock()
    creds = EventCredentials(EventsConfig(basic_username="bwp", basic_password=f"file:{secret}",
                                          secret_reload_seconds=30), clock=clock)
    secret.unlink()                                     # mid-rotation: the file is briefly absent
    clock.now += 31
    assert creds.check(basic("bwp", "first")) == "basic:bwp"
