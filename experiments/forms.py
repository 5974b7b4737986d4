from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class SamplePlanForm(forms.Form):
    """Inputs of the sample-size calculator (percentages as the marketer types them)."""

    baseline_rate = forms.FloatField(
        label=_("Baseline rate (%)"), min_value=0.01, max_value=99.99, initial=10.0
    )
    relative_mde = forms.FloatField(
        label=_("Minimum detectable effect (relative, %)"),
        min_value=0.5,
        max_value=500,
        initial=10.0,
        help_text=_("E.g. 10 to detect a change from 10 % to 11 %."),
    )
    alpha = forms.FloatField(
        label=_("Significance level (alpha)"), min_value=0.001, max_value=0.2, initial=0.05
    )
    power = forms.FloatField(label=_("Power (%)"), min_value=50, max_value=99, initial=80)
    variants = forms.IntegerField(
        label=_("Number of variants (control included)"), min_value=2, max_value=10, initial=2
    )
    sample_share = forms.FloatField(
        label=_("Share of the audience in the test (%)"),
        min_value=1,
        max_value=100,
        initial=100,
    )
    audience = forms.IntegerField(label=_("Audience size (optional)"), min_value=1, required=False)
