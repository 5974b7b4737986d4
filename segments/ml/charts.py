"""Plotly charts of a version for its admin page (HTML fragments; plotly.js is the vendored
cartesian partial bundle ``static/vendor/plotly/plotly-cartesian.min.js``, never from a CDN,
so only its trace types are used: scatter — SVG, enough for the projection's sample of
``ML_PROJECTION_POINTS`` points — bar and heatmap)."""

from __future__ import annotations

import plotly.graph_objects as go
from django.utils.translation import gettext as _

from segments.ml.catalogue import FEATURES_BY_NAME
from segments.ml.models import ClusterModelVersion


def _html(figure: go.Figure, div_id: str) -> str:
    figure.update_layout(margin={"l": 40, "r": 20, "t": 40, "b": 40}, height=380)
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)


def _cluster_name(stable_id: int, names: dict[int, str]) -> str:
    if stable_id == 0:
        return _("unassigned")
    return names.get(stable_id) or _("cluster %(id)s") % {"id": stable_id}


def version_charts(version: ClusterModelVersion, names: dict[int, str]) -> dict[str, str]:
    """``{chart key: HTML fragment}``: projections (PCA, t-SNE), sizes, profiles, automatic k."""
    charts: dict[str, str] = {}
    projection = version.projection or {}
    for key, labels_key, title in (
        ("pca", "labels", _("PCA projection of a sample")),
        ("tsne", "tsne_labels", _("t-SNE of a sample")),
    ):
        points = projection.get(key)
        if not points:
            continue
        labels = projection[labels_key]
        figure = go.Figure()
        for stable in sorted(set(labels)):
            xs = [p[0] for p, lab in zip(points, labels, strict=True) if lab == stable]
            ys = [p[1] for p, lab in zip(points, labels, strict=True) if lab == stable]
            figure.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="markers",
                    marker={"size": 4},
                    name=_cluster_name(stable, names),
                )
            )
        figure.update_layout(title=title)
        charts[key] = _html(figure, f"ml-{key}")
    clusters = list(version.clusters.order_by("stable_id"))
    if clusters:
        sizes = go.Figure(
            go.Bar(
                x=[_cluster_name(c.stable_id, names) for c in clusters],
                y=[c.size for c in clusters],
            )
        )
        sizes.update_layout(title=_("Contacts per cluster"))
        charts["sizes"] = _html(sizes, "ml-sizes")
        features = list(version.feature_names)
        profile = go.Figure(
            go.Heatmap(
                z=[[c.zscores.get(f) for f in features] for c in clusters],
                x=[
                    str(FEATURES_BY_NAME[f].label) if f in FEATURES_BY_NAME else f for f in features
                ],
                y=[_cluster_name(c.stable_id, names) for c in clusters],
                colorscale="RdBu",
                reversescale=True,
                zmid=0,
                colorbar={"title": "z"},
            )
        )
        profile.update_layout(title=_("Feature profile (z-score vs. the base)"), height=420)
        charts["profiles"] = _html(profile, "ml-profiles")
    if version.auto_k:
        ks = [row["k"] for row in version.auto_k]
        auto = go.Figure()
        for key, label in (
            ("silhouette", _("silhouette (higher is better)")),
            ("davies_bouldin", _("Davies-Bouldin (lower is better)")),
        ):
            auto.add_trace(go.Scatter(x=ks, y=[row[key] for row in version.auto_k], name=label))
        auto.add_trace(
            go.Scatter(
                x=ks,
                y=[row["calinski_harabasz"] for row in version.auto_k],
                name=_("Calinski-Harabasz (higher is better)"),
                yaxis="y2",
            )
        )
        auto.update_layout(
            title=_("Choosing the number of clusters"),
            xaxis={"title": "k", "dtick": 1},
            yaxis2={"overlaying": "y", "side": "right"},
        )
        charts["auto_k"] = _html(auto, "ml-auto-k")
    return charts
