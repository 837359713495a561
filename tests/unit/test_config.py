"""Configuration: the TOML file, ``PRIMEBRIDGE__...`` overrides, clear errors, secrets that never print."""

from __future__ import annotations

from pathlib import Path

import pytest

from primebridge.config import (
    NetSuiteConfig,
    RoutingConfig,
    Secret,
    Settings,
    load_settings,
    load_sku_map,
    settings_from_dict,
)
from primebridge.domain.errors import ConfigError
from primebridge.domain.routing import MissingPrimeData, OtherLines

CONFIG = """
log_level = "INFO"

[amazon]
client_id = "amzn1.application-oa2-client.abc"
client_secret = "env:PB_TEST_AMAZON_SECRET"
target_id = "store-1"

[sap]
enabled = true
base_url = "http://127.0.0.1:8102"
page_size = 50
password = "file:/run/secrets/sap"

[sap.routing]
amazon_locations = ["1010"]
order_types = ["OR"]
prime_shipping_methods = ["PRIME"]
delivery_speeds = { PRIME = "ONE_DAY" }
other_lines = "omit"
missing_prime_data = "non_prime"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "primebridge.toml"
    path.write_text(CONFIG)
    return path


def _error(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    return str(exc.value)


# -- file and environment --------------------------------------------------------------------------


def test_toml_file_is_loaded(config_file: Path) -> None:
    settings = load_settings(config_file, environ={})
    assert settings.sap.enabled is True and settings.sap.page_size == 50
    assert settings.amazon.client_id == "amzn1.application-oa2-client.abc"
    routing = settings.sap.routing
    assert routing.amazon_locations == ["1010"] and routing.other_lines is OtherLines.OMIT
    assert routing.missing_prime_data is MissingPrimeData.NON_PRIME
    assert settings.netsuite == NetSuiteConfig()


def test_no_file_and_no_environment_gives_the_defaults() -> None:
    assert load_settings(None, environ={}) == Settings()


def test_env_overrides_the_file(config_file: Path) -> None:
    settings = load_settings(config_file, environ={"PRIMEBRIDGE__SAP__PAGE_SIZE": "5"})
    assert settings.sap.page_size == 5
    assert settings.sap.enabled is True  # the rest of the section is kept


def test_env_nested_keys_and_toml_literals(config_file: Path) -> None:
    settings = load_settings(config_file, environ={
        "PRIMEBRIDGE__SAP__ROUTING__AMAZON_LOCATIONS": '["1010", "1020"]',
        "PRIMEBRIDGE__SAP__ROUTING__USE_LINE_FLAG": "true",
        "PRIMEBRIDGE__SAP__FIELDS__CONTROL_TEXT_ID": "Z009",
        "PRIMEBRIDGE__RUNTIME__LEASE_SECONDS": "12.5",
        "PRIMEBRIDGE__LOG_LEVEL": "DEBUG",
        "PRIMEBRIDGE__NETSUITE__ROUTING__DELIVERY_SPEEDS": '{ EXPRESS = "TWO_DAY" }',
    })
    assert settings.sap.routing.amazon_locations == ["1010", "1020"]
    assert settings.sap.routing.use_line_flag is True
    assert settings.sap.routing.prime_shipping_methods == ["PRIME"]  # untouched key from the file
    assert settings.sap.fields.control_text_id == "Z009"
    assert settings.runtime.lease_seconds == 12.5
    assert settings.log_level == "DEBUG"
    assert settings.netsuite.routing.delivery_speeds == {"EXPRESS": "TWO_DAY"}


def test_env_variables_without_the_prefix_are_ignored() -> None:
    settings = load_settings(None, environ={
        "PRIMEBRIDGE_AMAZON_CLIENT_SECRET": "x", "HOME": "/root", "PRIMEBRIDGE_SAP__PAGE_SIZE": "7"})
    assert settings == Settings()


def test_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMEBRIDGE__SAP__PAGE_SIZE", "77")
    assert load_settings().sap.page_size == 77


def test_env_value_that_is_not_a_toml_literal_is_a_string() -> None:
    settings = load_settings(None, environ={"PRIMEBRIDGE__SAP__USERNAME": "ALICE#1 x"})
    assert settings.sap.username == "ALICE#1 x"


def test_env_path_through_a_value_is_an_error(config_file: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(config_file, environ={"PRIMEBRIDGE__LOG_LEVEL__DEEP": "1"})
    assert "PRIMEBRIDGE__LOG_LEVEL__DEEP" in _error(exc) and "not a section" in _error(exc)


@pytest.mark.parametrize(("key", "value", "attr"), [
    ("PRIMEBRIDGE__SAP__SAP_CLIENT", "100", "sap_client"),
    ("PRIMEBRIDGE__SAP__INITIAL_WATERMARK", "2024-01-01T00:00:00Z", "initial_watermark"),
    ("PRIMEBRIDGE__SAP__USERNAME", "12345", "username"),
])
def test_env_value_for_a_string_key_stays_a_string(key: str, value: str, attr: str) -> None:
    assert getattr(load_settings(None, environ={key: value}).sap, attr) == value


# -- errors ----------------------------------------------------------------------------------------


def test_invalid_env_value_names_the_dotted_key() -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(None, environ={"PRIMEBRIDGE__SAP__PAGE_SIZE": "0"})
    assert "sap.page_size" in _error(exc)


@pytest.mark.parametrize(("text", "key"), [
    ("[runtime]\nworker_concurrency = 0\n", "runtime.worker_concurrency"),
    ('[sap.routing]\nother_lines = "sometimes"\n', "sap.routing.other_lines"),
    ('[netsuite]\nauth = "password"\n', "netsuite.auth"),
    ('[web]\nport = "eighty"\n', "web.port"),
])
def test_invalid_file_value_names_the_dotted_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={})
    assert key in _error(exc)


@pytest.mark.parametrize(("data", "key"), [
    ({"sap": {"pagesize": 5}}, "sap.pagesize"),
    ({"sapp": {}}, "sapp"),
    ({"sap": {"routing": {"amazon_location": ["1"]}}}, "sap.routing.amazon_location"),
])
def test_unknown_key_is_rejected(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        settings_from_dict(data)
    assert key in _error(exc)


def test_unknown_key_from_the_environment_is_rejected() -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(None, environ={"PRIMEBRIDGE__AMAZON__CLIENTID": "x"})
    assert "amazon.clientid" in _error(exc)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(tmp_path / "nope.toml", environ={})
    assert "nope.toml" in _error(exc) and "does not exist" in _error(exc)


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[sap\nenabled = true\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={})
    assert "bad.toml" in _error(exc) and "not valid TOML" in _error(exc)


def test_several_errors_are_all_reported() -> None:
    with pytest.raises(ConfigError) as exc:
        settings_from_dict({"sap": {"page_size": 0}, "runtime": {"max_attempts": 0}})
    assert "sap.page_size" in _error(exc) and "runtime.max_attempts" in _error(exc)


# -- secrets ---------------------------------------------------------------------------------------


def test_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PB_TEST_SECRET", "s3cr3t-from-env")
    assert Secret("env:PB_TEST_SECRET").reveal() == "s3cr3t-from-env"


def test_secret_env_variable_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PB_TEST_UNSET_SECRET", raising=False)
    with pytest.raises(ConfigError, match="PB_TEST_UNSET_SECRET"):
        Secret("env:PB_TEST_UNSET_SECRET").reveal()


def test_secret_from_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("s3cr3t-from-file\n")
    assert Secret(f"file:{path}").reveal() == "s3cr3t-from-file"


def test_secret_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        Secret(f"file:{tmp_path / 'absent'}").reveal()


def test_literal_secret_reveals_itself() -> None:
    assert Secret("plain-literal-value").reveal() == "plain-literal-value"


def test_secret_is_resolved_at_use_not_at_load(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PB_TEST_AMAZON_SECRET", raising=False)
    settings = load_settings(config_file, environ={})  # loading does not need the secret yet
    monkeypatch.setenv("PB_TEST_AMAZON_SECRET", "rotated-1")
    assert settings.amazon.client_secret.reveal() == "rotated-1"
    monkeypatch.setenv("PB_TEST_AMAZON_SECRET", "rotated-2")
    assert settings.amazon.client_secret.reveal() == "rotated-2"


def test_empty_secret_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"sap\.password"):
        settings_from_dict({"sap": {"password": ""}})


LITERAL = "hunter2-literal-secret"


def test_parsed_settings_never_show_a_literal_secret(config_file: Path) -> None:
    settings = load_settings(config_file, environ={
        "PRIMEBRIDGE__SAP__CLIENT_SECRET": LITERAL,
        "PRIMEBRIDGE__NETSUITE__TOKEN_SECRET": LITERAL,
        "PRIMEBRIDGE__WEB__ADMIN_TOKEN": LITERAL,
    })
    assert settings.sap.client_secret is not None and settings.sap.client_secret.reveal() == LITERAL
    for text in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.sap.client_secret)):
        assert LITERAL not in text
    assert LITERAL not in repr(settings.model_dump())


def test_secret_references_stay_visible(config_file: Path) -> None:
    """A reference is not the secret: showing it helps an operator find where the value should come from."""
    settings = load_settings(config_file, environ={})
    assert "env:PB_TEST_AMAZON_SECRET" in repr(settings)
    assert "file:/run/secrets/sap" in settings.model_dump_json()


def test_str_of_a_literal_secret_does_not_show_it() -> None:
    secret = Secret(LITERAL)
    assert LITERAL not in str(secret)
    assert LITERAL not in f"{secret}"


# -- routing config and the SKU map ----------------------------------------------------------------


def test_routing_config_builds_the_policy(config_file: Path) -> None:
    policy = load_settings(config_file, environ={}).sap.routing.policy()
    assert policy.amazon_locations == frozenset({"1010"}) and policy.order_types == frozenset({"OR"})
    assert policy.prime_shipping_methods == frozenset({"PRIME"})
    assert dict(policy.delivery_speeds) == {"PRIME": "ONE_DAY"}
    assert policy.other_lines is OtherLines.OMIT and policy.missing_prime_data is MissingPrimeData.NON_PRIME


def test_section_defaults_without_a_routing_table() -> None:
    settings = Settings()
    assert settings.sap.routing.order_types == ["OR"]
    assert settings.netsuite.routing.use_line_flag is True
    assert settings.netsuite.routing.statuses == ["A", "B"]


def test_setting_one_routing_key_keeps_the_other_section_defaults() -> None:
    settings = settings_from_dict({"sap": {"routing": {"amazon_locations": ["1010"]}},
                                   "netsuite": {"routing": {"sku_identity_fallback": False}}})
    assert settings.sap.routing.order_types == ["OR"]
    assert settings.netsuite.routing.use_line_flag is True
    assert settings.netsuite.routing.statuses == ["A", "B"]


def test_sku_map_file_is_loaded_and_merged(tmp_path: Path) -> None:
    csv_path = tmp_path / "skus.csv"
    csv_path.write_text("oms_item,amazon_sku\nMAT-1, AMZ-1 \nMAT-2,AMZ-2-FILE\n,IGNORED\n")
    routing = RoutingConfig(sku_map={"MAT-2": "AMZ-2-INLINE", "MAT-3": "AMZ-3"}, sku_map_file=csv_path)
    assert dict(routing.policy().sku_map) == {"MAT-1": "AMZ-1", "MAT-2": "AMZ-2-FILE", "MAT-3": "AMZ-3"}


def test_sku_map_file_from_toml(tmp_path: Path) -> None:
    csv_path = tmp_path / "skus.csv"
    csv_path.write_text("amazon_sku,oms_item,comment\nAMZ-9,MAT-9,extra columns are fine\n")
    conf = tmp_path / "c.toml"
    conf.write_text(f'[sap.routing]\nsku_map_file = "{csv_path}"\n')
    assert dict(load_settings(conf, environ={}).sap.routing.policy().sku_map) == {"MAT-9": "AMZ-9"}


def test_sku_map_csv_without_the_right_columns(tmp_path: Path) -> None:
    csv_path = tmp_path / "skus.csv"
    csv_path.write_text("material,sku\nMAT-1,AMZ-1\n")
    with pytest.raises(ConfigError, match="oms_item,amazon_sku"):
        RoutingConfig(sku_map_file=csv_path).policy()


def test_sku_map_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sku_map_file"):
        load_sku_map(tmp_path / "absent.csv")


# -- NetSuite base URL -----------------------------------------------------------------------------


def test_netsuite_base_url_from_the_account_id() -> None:
    assert NetSuiteConfig(account_id=" 1234567_SB1 ").resolved_base_url() == \
        "https://1234567-sb1.suitetalk.api.netsuite.com"
    assert NetSuiteConfig(base_url="http://127.0.0.1:9000/").resolved_base_url() == "http://127.0.0.1:9000"
    with pytest.raises(ConfigError, match="account_id"):
        NetSuiteConfig().resolved_base_url()


def test_the_shipped_example_is_valid_and_covers_every_section() -> None:
    """examples/primebridge.toml is where merchants start: it must load, and show each section."""
    import tomllib

    example = Path(__file__).resolve().parents[2] / "examples" / "primebridge.toml"
    settings = load_settings(example, environ={})
    data = tomllib.loads(example.read_text())
    for dotted in ("store", "runtime", "web", "amazon", "sap.fields", "sap.routing", "sap.shipments", "sap.inventory",
                   "netsuite.fields", "netsuite.routing", "netsuite.shipments", "netsuite.inventory", "events",
                   "package_events", "notify", "spapi", "inventory"):
        node = data
        for part in dotted.split("."):
            assert part in node, f"examples/primebridge.toml has no [{dotted}]"
            node = node[part]
    # Secrets are references, never values.
    assert str(settings.events.basic_password).startswith("env:")
    assert str(settings.events.oauth_client_secret).startswith("env:")
