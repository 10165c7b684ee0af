"""The upload form: one or more package files (each a package or a bundle) under the field ``file``."""
from __future__ import annotations

from typing import Any

from django import forms

from rollouts.forms import RolloutFields


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ".zip,application/zip"}))
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        if isinstance(data, list | tuple) and data:
            return [super(MultipleFileField, self).clean(d, initial) for d in data]
        if not data and not self.required:
            return []
        return [super().clean(data or None, initial)]


class UploadForm(RolloutFields):  # this import's own rollout fields too
    file = MultipleFileField(
        label="Package files",
        help_text="An extension zip, a bundle (zip of zips), or several at once; imported all or nothing.",
        error_messages={"required": "choose at least one package file"},
    )
    signature = MultipleFileField(
        label="Signatures",
        required=False,
        widget=MultipleFileInput(attrs={"accept": ".sig"}),
        help_text="Optional: each file's detached signature (ssh-keygen -Y sign -n extadmin), named X.zip.sig for "
        "X.zip, or chosen in the same order.",
    )
