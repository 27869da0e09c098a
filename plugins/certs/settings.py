"""The certs plugin's settings: where ACME certificates come from (PAAS_ACME_*), kept with the
plugin and read through `Settings.env` like any plugin's."""

from __future__ import annotations

from dataclasses import dataclass

from paas.plugin_api import Settings

LETSENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"


@dataclass(frozen=True)
class AcmeSettings:
    directory: str  # PAAS_ACME_DIRECTORY: the ACME server's directory URL (Let's Encrypt's)
    email: str | None  # PAAS_ACME_EMAIL: the account's contact
    ca_bundle: str | None  # PAAS_ACME_CA_BUNDLE: the CA the ACME server's TLS is checked against


def acme(settings: Settings) -> AcmeSettings:
    return AcmeSettings(
        directory=settings.env("PAAS_ACME_DIRECTORY", LETSENCRYPT_DIRECTORY) or LETSENCRYPT_DIRECTORY,
        email=settings.env("PAAS_ACME_EMAIL"),
        ca_bundle=settings.env("PAAS_ACME_CA_BUNDLE"),
    )
