import pytest

from paas.buildpacks.procfile import parse_procfile
from paas.errors import PaasError


def test_parses_types_and_keeps_command_text() -> None:
    text = "# comment\nweb: gunicorn -b 0.0.0.0:$PORT 'app:create_app()'\n\nworker:   python w.py  \n"
    assert parse_procfile(text) == {
        "web": "gunicorn -b 0.0.0.0:$PORT 'app:create_app()'",
        "worker": "python w.py",
    }


def test_command_may_contain_colons() -> None:
    assert parse_procfile("web: echo a:b:c") == {"web": "echo a:b:c"}


@pytest.mark.parametrize("text", ["web", "web:", "../x: run", "Web Server: run"])
def test_bad_lines_name_the_line(text: str) -> None:
    with pytest.raises(PaasError, match="Procfile line 1"):
        parse_procfile(text)
