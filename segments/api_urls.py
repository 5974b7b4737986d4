from django.urls import path

from segments.api import SegmentDetailApi, SegmentListCreateApi, SegmentMembersApi

urlpatterns = [
    path("segments", SegmentListCreateApi.as_view(), name="segments-list"),
    path("segments/<int:segment_id>", SegmentDetailApi.as_view(), name="segments-detail"),
    path("segments/<int:segment_id>/members", SegmentMembersApi.as_view(), name="segments-members"),
]
