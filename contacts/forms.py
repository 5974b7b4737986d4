"""Form fields shared by every admin page that asks for a contact."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from contacts.models import Contact
from contacts.selectors import contact_by_identifier


class ContactIdentifierField(forms.ModelChoiceField):
    """A contact typed by its external ID — the identifier the contact pages show — or, as
    before, by its internal number. Cleans to the :class:`Contact`; an unknown value is a
    field error naming what was typed. Shows a contact's external ID as its value."""

    widget = forms.TextInput
    default_error_messages = {
        "invalid_choice": _(
            "No contact has the external ID (or number) “%(value)s”. Copy the external ID "
            "from the contact's page."
        ),
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("queryset", Contact.objects.all())
        kwargs.setdefault("label", _("Contact (external ID)"))
        kwargs.setdefault("help_text", _("The external ID shown on the contact's page."))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, Contact):
            return value.external_id
        if isinstance(value, int):  # an initial pk (a model form's initial data)
            found = Contact.objects.filter(pk=value).values_list("external_id", flat=True)
            return found.first() or value
        return value

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, Contact):
            return value
        contact = contact_by_identifier(value)
        if contact is None:
            raise forms.ValidationError(
                self.error_messages["invalid_choice"],
                code="invalid_choice",
                params={"value": str(value).strip()[:128].replace("\x00", "")},
            )
        return contact

    def has_changed(self, initial, data) -> bool:
        if self.disabled:
            return False
        before = initial.pk if isinstance(initial, Contact) else initial
        after = contact_by_identifier(data) if data not in self.empty_values else None
        return str(before or "") != str(after.pk if after else "")


class ContactByIdentifierAdmin:
    """ModelAdmin mixin: every foreign key to a contact is typed as its external ID (or, as
    before, its internal number) instead of Django's raw-id number box."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.remote_field.model is Contact:
            return ContactIdentifierField(
                required=not db_field.blank,
                label=_("Contact (external ID)"),
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
