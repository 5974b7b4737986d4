/* The template form shows only the picked channel's fields in each version (locale): an email
   its subject, HTML and text; an SMS its text; a push its title, body and link. The server
   renders only the saved channel's fields on an existing template (activation/admin.py,
   TemplateVersionInline), and gives the list per channel on the channel select
   (data-channel-fields); this hides the others on the add page as the channel is picked,
   rows added later included. Without JavaScript every field stays visible. */
(function () {
  "use strict";
  var FIELDS = {};  // channel -> its fields, from the channel select's data-channel-fields
  var ALL = [];

  function apply() {
    var select = document.getElementById("id_channel");
    var shown = select && FIELDS[select.value];
    ALL.forEach(function (name) {
      document.querySelectorAll("#versions-group .field-" + name).forEach(function (row) {
        var hide = Boolean(shown) && shown.indexOf(name) === -1;
        row.style.display = hide ? "none" : "";
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var select = document.getElementById("id_channel");
    if (!select || !select.dataset.channelFields) return;
    FIELDS = JSON.parse(select.dataset.channelFields);
    Object.keys(FIELDS).forEach(function (channel) { ALL = ALL.concat(FIELDS[channel]); });
    select.addEventListener("change", apply);
    var group = document.getElementById("versions-group");
    if (group) new MutationObserver(apply).observe(group, { childList: true, subtree: true });
    apply();
  });
})();
