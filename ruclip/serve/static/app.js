// The page: a text query, an example image, or "похожие" on a result asks the server for the most similar
// images, among the photos taken in the chosen dates and carrying the chosen tags, in the chosen order; a
// click on a picture opens it at full size, with the previous and next results a key away; "Дубликаты"
// shows the groups of near-identical photos, the one to keep marked.
const K = 24;
const DAY = 24 * 60 * 60 * 1000;
const statusLine = document.getElementById('status');
const results = document.getElementById('results');
const groups = document.getElementById('groups');
const filters = document.getElementById('filters');
const viewer = document.getElementById('viewer');
const full = document.getElementById('full');
const after = document.getElementById('after');
const before = document.getElementById('before');
const sort = document.getElementById('sort');
const tagInput = document.getElementById('tag');
let hits = [];      // the pictures shown (search results, or the photos of the duplicate groups), as the server sent them
let shownAt = -1;   // the position in hits of the picture in the viewer
let latest = 0;     // the number of the last request: an older answer arriving late is dropped
let lastSearch = null;  // {path, what, options} of the last search, run again when a filter changes
let tags = [];      // the tags the search keeps photos of (all of them)

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
  invalid_date: 'Неверный период: дата «с» позже даты «по».',
  invalid_tag: 'Пустой тег.',
  invalid_threshold: 'Неверный порог сходства.',
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

// n with the Russian form of its noun: plural(3, 'фото', 'фото', 'фото'), plural(2, 'группа', 'группы', 'групп').
function plural(n, one, few, many) {
  const tens = n % 100, units = n % 10;
  if (tens >= 11 && tens <= 14) return `${n} ${many}`;
  if (units === 1) return `${n} ${one}`;
  if (units >= 2 && units <= 4) return `${n} ${few}`;
  return `${n} ${many}`;
}

// The filters as query parameters: the page's "по" date is the last day wanted, the API's `before` the first
// day not wanted.
function filterParameters() {
  const parameters = new URLSearchParams();
  if (after.value) parameters.set('after', after.value);
  if (before.value) {
    const next = new Date(Date.parse(`${before.value}T00:00:00Z`) + DAY);
    parameters.set('before', next.toISOString().slice(0, 10));
  }
  if (sort.value !== 'score') parameters.set('sort', sort.value);
  for (const tag of tags) parameters.append('tag', tag);
  return parameters;
}

function request(url, options, show) {
  const number = ++latest;
  statusLine.className = '';
  statusLine.removeAttribute('title');
  statusLine.textContent = 'ищу…';
  fetch(url, options).then(answer).then(body => {
    if (number === latest) show(body);
  }).catch(error => {
    if (number !== latest) return;
    hits = [];
    results.replaceChildren();  // the results of an earlier search do not answer this one
    groups.replaceChildren();
    statusLine.className = 'error';
    statusLine.textContent = error instanceof ServerError ? error.message : 'Нет связи с сервером.';
    if (error.detail) statusLine.title = error.detail;
  });
}

// path: the API's path with the search's own parameters; the filters are added at each run.
function search(path, what, options) {
  lastSearch = {path, what, options};
  rerun();
}

function rerun() {
  if (!lastSearch) return;
  const {path, what, options} = lastSearch;
  const extra = filterParameters().toString();
  request(extra ? `${path}&${extra}` : path, options, body => {
    showView('results');
    hits = body.results;
    results.replaceChildren(...hits.map(card));
    let line = `${what}: ${hits.length} из ${body.size}`;
    if (body.kept === 0) {
      line = `${what}: под выбранные даты и теги не подходит ни одно фото из ${body.size}`;
    } else if (body.kept !== null && body.kept !== undefined) {
      line = `${what}: ${hits.length}; под фильтр ${body.kept % 10 === 1 && body.kept % 100 !== 11 ? 'подходит' : 'подходят'} ` +
             `${body.kept} из ${plural(body.size, 'фото', 'фото', 'фото')}`;
    }
    if (sort.value === 'date') line += '; по дате съёмки';
    statusLine.textContent = line;
  });
}

function showView(name) {
  results.hidden = name !== 'results';
  groups.hidden = name !== 'groups';
  filters.hidden = name !== 'results';
}

function similar(hit) {
  search(`api/similar?id=${hit.id}&k=${K}`, `похожие на ${hit.name}`);
}

// "2023-01-15T10:00:00+03:00" as "15.01.2023 10:00", the time the camera showed.
function shownDate(taken) {
  const [date, time] = taken.split('T');
  const [year, month, day] = date.split('-');
  return `${day}.${month}.${year} ${(time || '').slice(0, 5)}`.trim();
}

function element(tag, className, text) {
  const item = document.createElement(tag);
  if (className) item.className = className;
  if (text !== undefined) item.textContent = text;
  return item;
}

function tagButton(tag) {
  const button = element('button', tags.includes(tag) ? 'tag active' : 'tag', tag);
  button.type = 'button';
  button.dataset.tag = tag;
  button.title = `только фото с тегом «${tag}»`;
  button.addEventListener('click', () => addTag(tag));
  return button;
}

function card(hit, position) {
  const item = element('figure', 'result');
  item.dataset.id = hit.id;
  item.dataset.path = hit.path;
  item.dataset.score = hit.score;
  item.dataset.taken = hit.taken || '';
  item.dataset.tags = (hit.tags || []).join(',');
  const img = thumbnail(hit, position);
  const caption = element('figcaption', 'caption');
  const name = element('span', 'name', `${hit.rank}. ${hit.name}`);
  const score = element('span', 'score', hit.score.toFixed(3));
  score.title = 'сходство с запросом';
  const button = element('button', 'similar', 'похожие');
  button.title = 'найти похожие на это фото';
  button.addEventListener('click', () => similar(hit));
  caption.append(name, score, button);
  item.append(img, caption);
  if (hit.taken) {
    const details = element('div', 'details');
    const taken = element('span', 'taken', shownDate(hit.taken));
    taken.dataset.takenFrom = hit.taken_from;
    if (hit.taken_from === 'mtime') {
      taken.textContent += ' (дата файла)';
      taken.title = 'в файле нет даты съёмки (EXIF): показано время последнего изменения файла';
    } else {
      taken.title = 'дата съёмки (EXIF)';
    }
    details.append(taken);
    if (hit.camera) details.append(` · ${hit.camera}`);
    details.title = details.textContent;
    item.append(details);
  }
  if (hit.tags && hit.tags.length) {
    const row = element('div', 'tags');
    row.append(...hit.tags.map(tagButton));
    item.append(row);
  }
  return item;
}

function showTags() {
  const chips = document.getElementById('active-tags');
  chips.replaceChildren(...tags.map(tag => {
    const chip = element('button', 'tag active', tag);
    chip.type = 'button';
    chip.dataset.tag = tag;
    chip.title = 'убрать этот тег из фильтра';
    chip.addEventListener('click', () => {
      tags = tags.filter(other => other !== tag);
      showTags();
      rerun();
    });
    return chip;
  }));
}

function addTag(tag) {
  tag = tag.trim();
  if (!tag || tags.includes(tag)) return;
  tags.push(tag);
  tagFilter.hidden = false;
  showTags();
  rerun();
}

// The tag filter is shown only when the index has tags (`ruclip tag`); their names complete the field.
const tagFilter = document.getElementById('tag-filter');
fetch('api/tags').then(answer).then(body => {
  tagFilter.dataset.asked = 'true';
  if (!body.tags.length) return;
  document.getElementById('tag-list').replaceChildren(...body.tags.map(({tag, count}) => {
    const option = document.createElement('option');
    option.value = tag;
    option.label = plural(count, 'фото', 'фото', 'фото');
    return option;
  }));
  tagFilter.hidden = false;
}).catch(() => { tagFilter.dataset.asked = 'true'; /* no tags to offer: the filter stays hidden */ });

function duplicates() {
  lastSearch = null;
  request('api/duplicates', undefined, body => {
    showView('groups');
    hits = body.groups.flatMap(group => group.photos);
    let position = 0;
    groups.replaceChildren(...body.groups.map((group, number) => {
      const section = element('section', 'group');
      section.dataset.exact = group.exact;
      const title = element('h2', '', `Группа ${number + 1}: ${plural(group.photos.length, 'фото', 'фото', 'фото')} `);
      title.append(element('span', 'kind', group.exact ? '· точные копии одного файла' : '· почти одинаковые'));
      const members = element('div', 'members');
      members.append(...group.photos.map(photo => member(photo, position++)));
      section.append(title, members);
      return section;
    }));
    const extra = body.groups.reduce((sum, group) => sum + group.photos.length - 1, 0);
    const how = {given: 'задан', measured: 'измерен для модели индекса', stored: 'измерен для модели индекса',
                 fallback: 'по умолчанию: измерить не удалось'}[body.threshold.source];
    const threshold = ` Порог сходства ${body.threshold.value.toFixed(6)} (${how}).`;
    statusLine.textContent = (body.groups.length
      ? `Дубликаты: ${plural(body.groups.length, 'группа', 'группы', 'групп')}, ` +
        `${plural(extra, 'лишнее фото', 'лишних фото', 'лишних фото')} (всего ${plural(body.size, 'фото', 'фото', 'фото')}); ` +
        'в каждой группе отмечено фото, которое стоит оставить (самое большое, затем самое раннее)'
      : `Дубликатов нет (всего ${plural(body.size, 'фото', 'фото', 'фото')}).`) + threshold;
  });
}

// an indexed photo's thumbnail, which opens the viewer at `position` of the shown photos
function thumbnail(photo, position) {
  const img = document.createElement('img');
  img.src = `thumb/${photo.id}`;
  img.alt = photo.name;
  img.title = `${photo.path}\nнажмите, чтобы открыть`;
  img.loading = 'lazy';
  img.addEventListener('click', () => open(position));
  return img;
}

function member(photo, position) {
  const item = element('figure', photo.keep ? 'member keep' : 'member');
  item.dataset.id = photo.id;
  item.dataset.path = photo.path;
  item.dataset.keep = photo.keep;
  const img = thumbnail(photo, position);
  const caption = element('figcaption');
  if (photo.keep) caption.append(element('span', 'badge keep', 'оставить'));
  caption.append(element('span', 'name', photo.name));
  const facts = [];
  if (photo.pixels >= 1e5) facts.push(`${(photo.pixels / 1e6).toFixed(1).replace('.', ',')} Мп`);
  else if (photo.pixels) facts.push(`${photo.pixels.toLocaleString('ru-RU')} пикс.`);
  facts.push(photo.size >= 1 << 20 ? `${(photo.size / (1 << 20)).toFixed(1).replace('.', ',')} МБ`
                                   : `${Math.max(1, Math.round(photo.size / 1024))} КБ`);
  if (photo.taken) facts.push(shownDate(photo.taken));
  caption.append(facts.join(' · '));
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

for (const field of [after, before, sort]) field.addEventListener('change', rerun);
tagInput.addEventListener('change', () => {
  addTag(tagInput.value);
  tagInput.value = '';
});
document.getElementById('reset').addEventListener('click', () => {
  after.value = before.value = '';
  sort.value = 'score';
  tags = [];
  showTags();
  rerun();
});
document.getElementById('show-duplicates').addEventListener('click', duplicates);
