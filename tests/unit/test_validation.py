import pytest

from paas.core import validation
from paas.errors import PaasError


@pytest.mark.parametrize("name", ["a", "hello", "my-app-2", "x" * 30, "rdmtestapp-" + "0a" * 16, "x" * 63])
def test_valid_app_names(name: str) -> None:
    assert validation.app_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "A", "1app", "-app", "app-", "my_app", "x" * 64, "a.b", "a/b", "../etc", "paas", "a b", "é"]
)
def test_invalid_app_names(name: str) -> None:
    with pytest.raises(PaasError):
        validation.app_name(name)


@pytest.mark.parametrize("key", ["A", "_X", "DATABASE_URL", "a1"])
def test_config_keys(key: str) -> None:
    assert validation.config_key(key) == key


@pytest.mark.parametrize("key", ["", "1A", "A-B", "A B", "A=B", "$(x)"])
def test_bad_config_keys(key: str) -> None:
    with pytest.raises(PaasError):
        validation.config_key(key)
