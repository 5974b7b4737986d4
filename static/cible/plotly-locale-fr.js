/* Plotly in French: numbers "1 234,5", dates "3 dec. 2026" in French, the toolbar's tooltips.
   Loaded after the plotly bundle by templates/cible/plotly_script.html when the page is in
   French; plotly's own locale mechanism (register + setPlotConfig), no other change.
   Non-ASCII letters are escaped: the file reads the same whatever charset it is served with. */
(function () {
  "use strict";
  if (!window.Plotly) return;
  window.Plotly.register({
    moduleType: "locale",
    name: "fr",
    dictionary: {
      "Autoscale": "\u00c9chelle automatique",
      "Box Select": "S\u00e9lection rectangulaire",
      "Double-click on legend to isolate one trace": "Double-cliquez sur la l\u00e9gende pour isoler une s\u00e9rie",
      "Double-click to zoom back out": "Double-cliquez pour d\u00e9zoomer",
      "Download plot": "T\u00e9l\u00e9charger le graphique",
      "Download plot as a png": "T\u00e9l\u00e9charger le graphique en PNG",
      "Download plot as a PNG": "T\u00e9l\u00e9charger le graphique en PNG",
      "Lasso Select": "S\u00e9lection lasso",
      "Pan": "D\u00e9placer",
      "Produced with Plotly.js": "R\u00e9alis\u00e9 avec Plotly.js",
      "Reset axes": "R\u00e9initialiser les axes",
      "Reset view": "R\u00e9initialiser la vue",
      "Toggle Spike Lines": "Afficher/masquer les rep\u00e8res",
      "Toggle show closest data on hover": "Afficher la donn\u00e9e la plus proche au survol",
      "Show closest data on hover": "Afficher la donn\u00e9e la plus proche au survol",
      "Compare data on hover": "Comparer les donn\u00e9es au survol",
      "Zoom": "Zoom",
      "Zoom in": "Zoom avant",
      "Zoom out": "Zoom arri\u00e8re",
      "trace": "s\u00e9rie"
    },
    format: {
      days: ["dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi"],
      shortDays: ["dim.", "lun.", "mar.", "mer.", "jeu.", "ven.", "sam."],
      months: ["janvier", "f\u00e9vrier", "mars", "avril", "mai", "juin", "juillet", "ao\u00fbt",
        "septembre", "octobre", "novembre", "d\u00e9cembre"],
      shortMonths: ["janv.", "f\u00e9vr.", "mars", "avr.", "mai", "juin", "juil.", "ao\u00fbt", "sept.",
        "oct.", "nov.", "d\u00e9c."],
      date: "%d/%m/%Y",
      decimal: ",",
      thousands: "\u00a0"
    }
  });
  window.Plotly.setPlotConfig({ locale: "fr" });
})();
