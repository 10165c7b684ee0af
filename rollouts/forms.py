"""The rollout fields: on the upload form (this import's own policy) and the settings page (the
cluster's default). Plain text here: ``rollouts.policy`` checks them, in the words every door uses."""
from __future__ import annotations

from django import forms

FIELDS = ("canary", "batch", "max_failures", "activation")


class RolloutFields(forms.Form):
    canary = forms.CharField(
        required=False, label="Canary nodes", help_text="install first, before any batch (comma separated)",
        widget=forms.TextInput(attrs={"placeholder": "node-1", "autocomplete": "off"}),
    )
    batch = forms.CharField(
        required=False, label="Batch size", help_text="at most this many nodes change at once (empty: all)",
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    max_failures = forms.CharField(
        required=False, label="Halt after failures", help_text="halt when this many nodes failed (empty: never)",
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    # A select, checked by ``rollouts.policy`` (not by the form), so a wrong value reads as everywhere else.
    activation = forms.CharField(
        required=False, label="Activation", help_text="together: every node stages it, then all switch at once",
        widget=forms.Select(choices=[("", "(default)"), ("each", "each node as it installs"),
                                     ("together", "all nodes together")]),
    )


def rollout_fields(data: object) -> dict[str, str]:
    """The rollout fields as posted (a QueryDict or a dict); absent ones are empty."""
    get = getattr(data, "get", None)
    return {k: (get(k) or "") if get else "" for k in FIELDS}
