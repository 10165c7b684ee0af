"""The import policy, as the platform has it (ThingWorx's ``ExtensionPackageImportPolicy``).

Eight switches, all on by default: the embedded default imports everything and an operator
restricts. A package needs a kind of content when its ``metadata.xml`` declares it *or* its zip
holds it: a declaration can be left out, a file cannot hide. The kinds:

- JAR resources (``allowJarResources``): ``FileResource type="JAR"``, or a ``.jar`` entry anywhere;
- JavaScript (``allowJavascriptResources``): ``type="JS"``, or a ``.js``/``.mjs`` entry;
- CSS (``allowCSSResources``): ``type="CSS"``, or a ``.css`` entry;
- JSON (``allowJSONResources``): ``type="JSON"``, or a ``.json`` entry;
- web apps (``allowWebAppResources``): ``type="WEBAPP"``/``"WAR"``, a ``.war`` entry, a ``WEB-INF``
  folder, a top ``webapp(s)/`` folder, or a folder holding an ``index.html`` (``ui/<App>/index.html``).
  A web app's own ``.js``/``.css``/``.json`` files are also what they are: forbidding JavaScript
  forbids it inside a web app too, so no switch can be passed around through another;
- entities (``allowEntities``): any entity metadata.xml declares, or an entry under ``Entities/``;
- extensible entities (``allowExtensibleEntities``): an entity declared ``aspect.isExtensible="true"``
  (the platform lets others extend such ThingTemplates and ThingShapes after import).

``importEnabled: false`` refuses every import before any package is read. Pure: no Django here.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from extadmin.packaging.errors import Refusal, shown
from extadmin.packaging.metadata import FileResourceDecl, PackageMetadata

IMPORT_ENABLED = "importEnabled"


@dataclass(frozen=True)
class ContentKind:
    key: str  # the policy key that allows it
    what: str  # how a refusal names it
    declared_types: frozenset[str]  # FileResource types (upper case) that declare it
    holds: Callable[[PurePosixPath], bool]  # whether a zip entry is of this kind


def _suffix(*suffixes: str) -> Callable[[PurePosixPath], bool]:
    return lambda path: path.suffix.lower() in suffixes


def _is_web_app_file(path: PurePosixPath) -> bool:
    parts = [part.lower() for part in path.parts]
    in_folder = parts[:-1]
    return path.suffix.lower() == ".war" or "web-inf" in in_folder or in_folder[:1] in (["webapp"], ["webapps"])


def _is_entity_file(path: PurePosixPath) -> bool:
    return len(path.parts) > 1 and path.parts[0].lower() == "entities"


KINDS = (
    ContentKind("allowJarResources", "JAR resources", frozenset({"JAR"}), _suffix(".jar")),
    ContentKind("allowJavascriptResources", "JavaScript resources", frozenset({"JS", "JAVASCRIPT"}),
                _suffix(".js", ".mjs")),
    ContentKind("allowCSSResources", "CSS resources", frozenset({"CSS"}), _suffix(".css")),
    ContentKind("allowJSONResources", "JSON resources", frozenset({"JSON"}), _suffix(".json")),
    ContentKind("allowWebAppResources", "web app resources", frozenset({"WEBAPP", "WAR"}), _is_web_app_file),
    ContentKind("allowEntities", "entities", frozenset(), _is_entity_file),
)
EXTENSIBLE_ENTITIES = "allowExtensibleEntities"
POLICY_KEYS = (IMPORT_ENABLED, *(kind.key for kind in KINDS), EXTENSIBLE_ENTITIES)
DEFAULT_POLICY: dict[str, bool] = dict.fromkeys(POLICY_KEYS, True)


class PolicyError(ValueError):
    """The configured policy is not one extadmin can enforce (settings turn it into ImproperlyConfigured)."""


def parse_import_policy(text: str | None) -> dict[str, bool]:
    """``EXTADMIN_IMPORT_POLICY`` → every key with its value; unset or blank is the default (all true).

    A typo must not silently allow what the operator meant to forbid: unknown keys, values that
    are not JSON booleans and anything but an object are refused, naming what was wrong.
    """
    if text is None or not text.strip():
        return dict(DEFAULT_POLICY)
    try:
        given = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"EXTADMIN_IMPORT_POLICY is not valid JSON ({exc})") from None
    return effective_policy(given)


def effective_policy(given: object) -> dict[str, bool]:
    """The default, overridden by ``given`` (a mapping of known keys to booleans)."""
    if not isinstance(given, Mapping):
        raise PolicyError(f"EXTADMIN_IMPORT_POLICY must be a JSON object of {', '.join(POLICY_KEYS)}")
    unknown = sorted(str(key) for key in given if key not in POLICY_KEYS)
    if unknown:
        raise PolicyError(
            f"EXTADMIN_IMPORT_POLICY has unknown keys {', '.join(unknown)}; the keys are {', '.join(POLICY_KEYS)}"
        )
    wrong = sorted(key for key, value in given.items() if not isinstance(value, bool))
    if wrong:
        raise PolicyError(f"EXTADMIN_IMPORT_POLICY: {', '.join(wrong)} must be true or false (JSON booleans)")
    return {**DEFAULT_POLICY, **given}


def check_imports_enabled(policy: Mapping[str, bool]) -> None:
    if not policy.get(IMPORT_ENABLED, True):
        raise Refusal("validate", f"the import policy forbids imports ({IMPORT_ENABLED} is false)")


def check_import_policy(policy: Mapping[str, bool], *, metadata: PackageMetadata, entries: Iterable[str]) -> None:
    """Refuse the package if it needs a kind the policy forbids, naming the key and what needs it."""
    check_imports_enabled(policy)
    files = [PurePosixPath(name) for name in entries if name != "metadata.xml"]
    for kind in KINDS:
        if not policy.get(kind.key, True):
            _refuse_if_any(kind.key, kind.what, [*_declared(kind, metadata), *_held(kind, files)])
    if not policy.get(EXTENSIBLE_ENTITIES, True):
        extensible = [
            f'metadata.xml declares {shown(e.type)} \'{shown(e.name)}\' with aspect.isExtensible="true"'
            for e in metadata.entities if e.extensible
        ]
        _refuse_if_any(EXTENSIBLE_ENTITIES, "extensible entities", extensible)


def _declared(kind: ContentKind, metadata: PackageMetadata) -> list[str]:
    if kind.key == "allowEntities":
        return [f"metadata.xml declares {shown(e.type)} '{shown(e.name)}'" for e in metadata.entities]
    return [_declaration(r) for r in metadata.resources if r.type.upper() in kind.declared_types]


def _declaration(resource: FileResourceDecl) -> str:
    return f'metadata.xml declares FileResource type="{shown(resource.type)}" file="{shown(resource.file)}"'


def _held(kind: ContentKind, files: list[PurePosixPath]) -> list[str]:
    held = [f"entry '{shown(str(path))}'" for path in files if kind.holds(path)]
    if kind.key == "allowWebAppResources":
        apps = sorted({str(path.parent) for path in files if path.name.lower() in {"index.html", "index.htm"}})
        held += [f"folder '{shown(app)}/' (an index.html)" if app != "." else "an index.html at the root"
                 for app in apps]
    return held


def _refuse_if_any(key: str, what: str, needing: list[str]) -> None:
    if not needing:
        return
    more = f" (and {len(needing) - 1} more)" if len(needing) > 1 else ""
    raise Refusal("validate", f"the import policy forbids {what} ({key} is false): {needing[0]}{more}")
