// The page: a text query, an example image, or a click on a result asks the server for the most similar images.
const K = 24;
const statusLine = document.getElementById('status');
const results = document.getElementById('results');

function show(response, what) {
  return response.json().then(body => {
    if (!response.ok) throw new Error(body.error || response.statusText);
    results.replaceChildren(...body.results.map(card));
    statusLine.className = '';
    statusLine.textContent = `${what}: ${body.results.length} из ${body.size}`;
  });
}

function card(hit) {
  const item = document.createElement('figure');
  item.className = 'result';
  item.dataset.id = hit.id;
  item.dataset.path = hit.path;
  item.dataset.score = hit.score;
  item.title = `${hit.path}\nнажмите, чтобы найти похожие`;
  const img = document.createElement('img');
  img.src = `thumb/${hit.id}`;
  img.alt = hit.name;
  img.loading = 'lazy';
  const caption = document.createElement('figcaption');
  caption.className = 'caption';
  caption.innerHTML = '<span class="name"></span><span class="score"></span>';
  caption.firstChild.textContent = `${hit.rank}. ${hit.name}`;
  caption.lastChild.textContent = hit.score.toFixed(3);
  item.append(img, caption);
  item.addEventListener('click', () => run(fetch(`api/similar?id=${hit.id}&k=${K}`), `похожие на ${hit.name}`));
  return item;
}

function run(request, what) {
  statusLine.className = '';
  statusLine.textContent = 'ищу…';
  request.then(response => show(response, what)).catch(error => {
    statusLine.className = 'error';
    statusLine.textContent = error.message;
  });
}

document.getElementById('search').addEventListener('submit', event => {
  event.preventDefault();
  const text = document.getElementById('query').value;
  run(fetch(`api/search?q=${encodeURIComponent(text)}&k=${K}`), `«${text}»`);
});

document.getElementById('image').addEventListener('change', event => {
  const file = event.target.files[0];
  if (file) run(fetch(`api/search?k=${K}`, {method: 'POST', body: file}), `похожие на ${file.name}`);
  event.target.value = '';
});
