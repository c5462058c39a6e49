// Switch the admin's language as soon as another one is picked (the button stays for
// browsers without JavaScript). Served as a file: the CSP allows no inline script.
document.addEventListener("DOMContentLoaded", function () {
  var select = document.getElementById("language-select");
  if (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  }
});
