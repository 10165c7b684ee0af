"""Manifests written before the fix held the zip's raw entry names (``./metadata.xml``,
``lib//a.jar``) while every node's folder holds the cleaned ones, so every node failed every sync
of such a package for ever. Rewrite them under the names extraction writes (the rule of
``extadmin.packaging.safezip._normalise_name``: empty and ``.`` components dropped), copied here
so the migration never changes with the code."""

from django.db import migrations


def _clean(path: str) -> str:
    return "/".join(part for part in path.split("/") if part not in ("", "."))


def clean_manifest_names(apps, schema_editor):  # type: ignore[no-untyped-def]
    Archive = apps.get_model("extadmin", "Archive")
    for archive in Archive.objects.only("id", "manifest").iterator():
        cleaned = [[_clean(path), *rest] for path, *rest in archive.manifest]
        if cleaned != archive.manifest:
            Archive.objects.filter(pk=archive.pk).update(manifest=cleaned)


class Migration(migrations.Migration):
    dependencies = [("extadmin", "0001_initial")]

    operations = [migrations.RunPython(clean_manifest_names, migrations.RunPython.noop)]
