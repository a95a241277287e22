// The page: a text query, an example image, or "похожие" on a result asks the server for the most similar
// images; a click on a picture opens it at full size, with the previous and next results a key away.
const K = 24;
const statusLine = document.getElementById('status');
const results = document.getElementById('results');
const viewer = document.getElementById('viewer');
const full = document.getElementById('full');
let hits = [];      // the results shown, as the server sent them
let shownAt = -1;   // the position in hits of the picture in the viewer
let latest = 0;     // the number of the last search: an older answer arriving late is dropped

// What the server's error codes mean, in Russian; the server's own (English) message is kept in the title.
const MESSAGES = {
  empty_query: 'Введите слова для поиска.',
  bad_image: 'Не удалось прочитать изображение: это не картинка или файл повреждён.',
  empty_image: 'Файл пуст: выберите изображение.',
  request_too_large: 'Файл слишком большой.',
  queue_full: 'Сервер занят: повторите через секунду.',
  not_found: 'Изображение не найдено в индексе.',
  invalid_api_key: 'Нужен ключ доступа к серверу.',
  invalid_request: 'Неверный запрос.',
  invalid_query: 'Неверный запрос.',
};

class ServerError extends Error {
  constructor(message, detail) { super(message); this.detail = detail; }
}

async function answer(response) {
  let body = null;
  try { body = await response.json(); } catch (error) { /* not JSON: a proxy's page */ }
  if (!response.ok) {
    const code = body && body.error && body.error.code;
    const detail = body && body.error && body.error.message || response.statusText;
    throw new ServerError(MESSAGES[code] || `Ошибка сервера (HTTP ${response.status}).`, detail);
  }
  return body;
}

function search(url, what, options) {
  const number = ++latest;
  statusLine.className = '';
  statusLine.removeAttribute('title');
  statusLine.textContent = 'ищу…';
  fetch(url, options).then(answer).then(body => {
    if (number !== latest) return;
    hits = body.results;
    results.replaceChildren(...hits.map(card));
    statusLine.textContent = `${what}: ${hits.length} из ${body.size}`;
  }).catch(error => {
    if (number !== latest) return;
    hits = [];
    results.replaceChildren();  // the results of an earlier search do not answer this one
    statusLine.className = 'error';
    statusLine.textContent = error instanceof ServerError ? error.message : 'Нет связи с сервером.';
    if (error.detail) statusLine.title = error.detail;
  });
}

function similar(hit) {
  search(`api/similar?id=${hit.id}&k=${K}`, `похожие на ${hit.name}`);
}

function card(hit, position) {
  const item = document.createElement('figure');
  item.className = 'result';
  item.dataset.id = hit.id;
  item.dataset.path = hit.path;
  item.dataset.score = hit.score;
  const img = document.createElement('img');
  img.src = `thumb/${hit.id}`;
  img.alt = hit.name;
  img.title = `${hit.path}\nнажмите, чтобы открыть`;
  img.loading = 'lazy';
  img.addEventListener('click', () => open(position));
  const caption = document.createElement('figcaption');
  caption.className = 'caption';
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = `${hit.rank}. ${hit.name}`;
  const score = document.createElement('span');
  score.className = 'score';
  score.textContent = hit.score.toFixed(3);
  const button = document.createElement('button');
  button.className = 'similar';
  button.textContent = 'похожие';
  button.title = 'найти похожие на это фото';
  button.addEventListener('click', () => similar(hit));
  caption.append(name, score, button);
  item.append(img, caption);
  return item;
}

function open(position) {
  if (!hits.length) return;
  shownAt = (position + hits.length) % hits.length;
  const hit = hits[shownAt];
  full.onerror = () => { full.onerror = null; full.src = `thumb/${hit.id}`; };  // a format the browser cannot show
  full.src = `image/${hit.id}`;
  full.alt = hit.name;
  document.getElementById('where').textContent = `${shownAt + 1} из ${hits.length}: ${hit.path}`;
  viewer.hidden = false;
}

function close() {
  viewer.hidden = true;
  full.removeAttribute('src');
  shownAt = -1;
}

document.getElementById('previous').addEventListener('click', () => open(shownAt - 1));
document.getElementById('next').addEventListener('click', () => open(shownAt + 1));
document.getElementById('close').addEventListener('click', close);
document.getElementById('viewer-similar').addEventListener('click', () => {
  const hit = hits[shownAt];
  close();
  similar(hit);
});
document.addEventListener('keydown', event => {
  if (viewer.hidden) return;
  if (event.key === 'ArrowLeft') open(shownAt - 1);
  else if (event.key === 'ArrowRight') open(shownAt + 1);
  else if (event.key === 'Escape') close();
});

document.getElementById('search').addEventListener('submit', event => {
  event.preventDefault();
  const text = document.getElementById('query').value;
  search(`api/search?q=${encodeURIComponent(text)}&k=${K}`, `«${text}»`);
});

document.getElementById('image').addEventListener('change', event => {
  const file = event.target.files[0];
  if (file) search(`api/search?k=${K}`, `похожие на ${file.name}`, {method: 'POST', body: file});
  event.target.value = '';
});
