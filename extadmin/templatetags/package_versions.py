"""``{% package_versions package as versions %}``: the version list the package page shows (``_versions.html``)."""
from __future__ import annotations

from django import template

from extadmin.models import ExtensionPackage
from extadmin.versions import VersionEntry
from extadmin.versions import package_versions as versions_of

register = template.Library()


@register.simple_tag
def package_versions(package: ExtensionPackage | None) -> list[VersionEntry]:
    return versions_of(package=package) if package is not None else []
