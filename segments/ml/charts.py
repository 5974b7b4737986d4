"""Plotly figures of a version for its admin page, as JSON-serialisable dictionaries drawn by
``cible/plotly_charts.html`` with the vendored cartesian partial bundle
(``static/vendor/plotly/plotly-cartesian.min.js``, never from a CDN), so only its trace types
are used: scatter (SVG), bar and heatmap.

Everything drawn is a summary stored with the version at training time: the projections are
of a random sample of ``ML_PROJECTION_POINTS`` contacts (t-SNE of its first
``ML_TSNE_POINTS``), the sample size is in the chart's title, and the sizes and profiles are
one value per cluster — the page's cost does not grow with the number of contacts.
"""

from __future__ import annotations

from django.utils.formats import number_format
from django.utils.translation import gettext as _

from segments.ml.catalogue import FEATURES_BY_NAME
from segments.ml.models import ClusterModelVersion

HEIGHT = 380


def _layout(title: str, *, categorical: bool = False, **extra) -> dict:
    """Plotly.js's own defaults, no plotly.py template (8 KB of JSON per chart). Axes take the
    margin their labels need (automargin) only when those are category names: the option
    draws a chart twice, and a scatter of thousands of points has only numbers on its axes."""
    layout = {
        "title": {"text": title},
        "margin": {"l": 50, "r": 20, "t": 40, "b": 40},
        "height": HEIGHT,
        **extra,
    }
    if categorical:
        for axis in ("xaxis", "yaxis"):
            layout[axis] = {"automargin": True, **layout.get(axis, {})}
    return layout


def _cluster_name(stable_id: int, names: dict[int, str]) -> str:
    if stable_id == 0:
        return _("unassigned")
    return names.get(stable_id) or _("cluster %(id)s") % {"id": stable_id}


def _projection_figure(points: list, labels: list, title: str, names: dict[int, str]) -> dict:
    """One scatter trace per cluster (its legend entry), points grouped in one pass."""
    by_cluster: dict[int, tuple[list[float], list[float]]] = {}
    for (x, y, *_rest), label in zip(points, labels, strict=True):
        xs, ys = by_cluster.setdefault(label, ([], []))
        xs.append(x)
        ys.append(y)
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "markers",
                "x": xs,
                "y": ys,
                "marker": {"size": 4},
                "name": _cluster_name(stable, names),
            }
            for stable, (xs, ys) in sorted(by_cluster.items())
        ],
        "layout": _layout(title),
    }


def version_charts(version: ClusterModelVersion, names: dict[int, str]) -> list[dict]:
    """``[{"id", "figure"}]`` in display order: projections (PCA, t-SNE) of the stored sample,
    contacts per cluster, feature profiles, automatic choice of k."""
    charts: list[dict] = []
    projection = version.projection or {}
    for key, labels_key, title in (
        ("pca", "labels", _("PCA projection of a random sample of %(n)s contacts")),
        ("tsne", "tsne_labels", _("t-SNE of a random sample of %(n)s contacts")),
    ):
        points = projection.get(key)
        if not points:
            continue
        sample = number_format(len(points), force_grouping=True)
        figure = _projection_figure(points, projection[labels_key], title % {"n": sample}, names)
        charts.append({"id": f"ml-{key}", "figure": figure})
    clusters = list(version.clusters.order_by("stable_id"))
    if clusters:
        cluster_names = [_cluster_name(c.stable_id, names) for c in clusters]
        charts.append(
            {
                "id": "ml-sizes",
                "figure": {
                    "data": [{"type": "bar", "x": cluster_names, "y": [c.size for c in clusters]}],
                    "layout": _layout(_("Contacts per cluster"), categorical=True),
                },
            }
        )
        features = list(version.feature_names)
        charts.append(
            {
                "id": "ml-profiles",
                "figure": {
                    "data": [
                        {
                            "type": "heatmap",
                            "z": [[c.zscores.get(f) for f in features] for c in clusters],
                            "x": [
                                str(FEATURES_BY_NAME[f].label) if f in FEATURES_BY_NAME else f
                                for f in features
                            ],
                            "y": cluster_names,
                            "colorscale": "RdBu",
                            "reversescale": True,
                            "zmid": 0,
                            "colorbar": {"title": {"text": "z"}},
                        }
                    ],
                    "layout": _layout(
                        _("Feature profile (z-score vs. the base)"), categorical=True, height=420
                    ),
                },
            }
        )
    if version.auto_k:
        ks = [row["k"] for row in version.auto_k]
        data = [
            {"type": "scatter", "x": ks, "y": [row[key] for row in version.auto_k], "name": label}
            for key, label in (
                ("silhouette", _("silhouette (higher is better)")),
                ("davies_bouldin", _("Davies-Bouldin (lower is better)")),
            )
        ]
        data.append(
            {
                "type": "scatter",
                "x": ks,
                "y": [row["calinski_harabasz"] for row in version.auto_k],
                "name": _("Calinski-Harabasz (higher is better)"),
                "yaxis": "y2",
            }
        )
        charts.append(
            {
                "id": "ml-auto-k",
                "figure": {
                    "data": data,
                    "layout": _layout(
                        _("Choosing the number of clusters"),
                        xaxis={"title": {"text": "k"}, "dtick": 1},
                        yaxis2={"overlaying": "y", "side": "right"},
                    ),
                },
            }
        )
    return charts
