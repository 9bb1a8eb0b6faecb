// koogate console: refreshes the live part of the page and opens a call's details on click. No inline script:
// the page's Content-Security-Policy allows only this file.
'use strict';
(function () {
  const live = document.getElementById('live');
  const form = document.getElementById('filters');
  if (!live || !form) {
    return;
  }
  const every = Number(live.dataset.refreshMs) || 5000;
  let open = location.hash.startsWith('#call-') ? location.hash.slice('#call-'.length) : null;

  function query() {
    return new URLSearchParams(new FormData(form)).toString();
  }

  function reopen() {
    if (!open) {
      return;
    }
    const detail = document.getElementById('detail-' + open);
    if (detail) {
      detail.hidden = false;
    }
  }

  async function refresh() {
    try {
      const response = await fetch('/console/live?' + query(), {
        credentials: 'same-origin',
        cache: 'no-store',
      });
      if (!response.ok) {
        live.dataset.state = 'error ' + response.status;
        return;
      }
      live.innerHTML = await response.text();
      live.dataset.state = 'live';
      reopen();
    } catch (e) {
      live.dataset.state = 'offline';
    }
  }

  function toggle(row) {
    const id = row.dataset.id;
    const detail = document.getElementById('detail-' + id);
    if (!detail) {
      return;
    }
    detail.hidden = !detail.hidden;
    open = detail.hidden ? null : id;
    history.replaceState(null, '', location.pathname + location.search + (open ? '#call-' + open : ''));
  }

  live.addEventListener('click', function (event) {
    const row = event.target.closest('tr.call');
    if (row) {
      toggle(row);
    }
  });
  live.addEventListener('keydown', function (event) {
    const row = event.target.closest('tr.call');
    if (row && (event.key === 'Enter' || event.key === ' ')) {
      event.preventDefault();
      toggle(row);
    }
  });
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    history.replaceState(null, '', '/console?' + query());
    refresh();
  });
  form.addEventListener('change', function () {
    history.replaceState(null, '', '/console?' + query());
    refresh();
  });

  reopen();
  refresh();
  setInterval(refresh, every);
})();
