from django.urls import path

from contacts.api import ContactDetailApi, ContactsBulkApi, EventsBulkApi

urlpatterns = [
    path("contacts/bulk", ContactsBulkApi.as_view(), name="contacts-bulk"),
    path("events/bulk", EventsBulkApi.as_view(), name="events-bulk"),
    path("contacts/<str:external_id>", ContactDetailApi.as_view(), name="contact-detail"),
]
