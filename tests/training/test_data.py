"""Training data: the three table formats read alike (the readers of `ruclip embed`), and class
folders give their class names in the templates."""
import pyarrow as pa
import pyarrow.parquet as pq

from ruclip.training import read_pairs

from helpers.pictures import CLASSES, write_table


def test_csv_jsonl_and_parquet_tables_give_the_same_pairs(tmp_path):
    csv_table = write_table(tmp_path, 2, seed=0, kind='csv')
    jsonl_table = tmp_path / 'pairs.jsonl'
    rows = [line.split(',') for line in csv_table.read_text(encoding='utf-8').splitlines()[1:]]
    jsonl_table.write_text(''.join(f'{{"image": "{path}", "text": "{caption}"}}\n' for path, caption in rows),
                           encoding='utf-8')
    parquet_table = tmp_path / 'pairs.parquet'
    pq.write_table(pa.table({'filepath': [path for path, _ in rows], 'caption': [c for _, c in rows]}), parquet_table)
    read = [read_pairs([table]) for table in (csv_table, jsonl_table, parquet_table)]
    assert all(pairs.images == read[0].images and pairs.captions == read[0].captions for pairs in read)
    assert read[0].images[0] == str(tmp_path / 'images' / '00_000.png')
    assert read[0].groups == [number for number in range(len(CLASSES)) for _ in range(2)]  # one group per caption
    assert len({pairs.fingerprint for pairs in read}) == 3


def test_class_folders_caption_each_row_with_its_class_in_a_template(shapes):
    pairs = read_pairs([shapes['train_folder']], templates=['{}', 'фото: {}'])
    assert sorted(pairs.classes) == sorted(CLASSES) and len(pairs) == 120
    row = pairs.groups.index(pairs.classes.index('синий круг'))
    assert [pairs.caption_of(row, template) for template in (0, 1)] == ['синий круг', 'фото: синий круг']
