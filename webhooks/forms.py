"""The endpoint form. It only collects: the service checks every value, with the words every door uses."""
from __future__ import annotations

from django import forms

from webhooks.events import EVENTS


class EventsField(forms.MultipleChoiceField):
    """The boxes ticked, as sent: an unknown name is refused by the service, in its words."""

    def valid_value(self, value: str) -> bool:
        return True


class EndpointForm(forms.Form):
    url = forms.CharField(label="URL", required=False, max_length=2000, widget=forms.URLInput(attrs={"size": 60}))
    events = EventsField(
        choices=[(e, e) for e in EVENTS], required=False, widget=forms.CheckboxSelectMultiple
    )
    secret = forms.CharField(
        required=False, max_length=256, widget=forms.PasswordInput(render_value=False),
        help_text="16 characters or more. Leave empty to have one generated (new endpoint) or to keep it (edit).",
    )
    description = forms.CharField(required=False, max_length=200)
    active = forms.BooleanField(required=False, initial=True)
