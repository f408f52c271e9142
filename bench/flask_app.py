"""The Flask original (the seed article's example) as chunkstream-bench serves it.

The article's app, unchanged but for reading `count`, `interval_ms` and `start` from the
query (the seed streams `range(10)`), so the same requests reach both servers. chunkstream-bench
runs it as Flask is deployed for streaming: gunicorn with gevent workers, one per core,
from a venv it makes under target/ (see bench/src/flask.rs).

    gunicorn -k gevent -w 2 -b 127.0.0.1:3003 --chdir bench flask_app:app
"""
import time

from flask import Flask, Response, request

app = Flask(__name__)


def generate_data(count=10, interval_ms=0, start=0):
    for i in range(start, count):
        if interval_ms and i > start:
            # gunicorn's gevent worker patches time.sleep: the worker serves others meanwhile.
            time.sleep(interval_ms / 1000)
        yield f"Data Chunk {i}\n"


@app.route('/stream', methods=['GET'])
def stream_data():
    count = request.args.get('count', 10, type=int)
    interval_ms = request.args.get('interval_ms', 0, type=int)
    start = request.args.get('start', 0, type=int)

    def generate():
        for data_chunk in generate_data(count, interval_ms, start):
            yield data_chunk

    return Response(generate(), mimetype='text/plain')


if __name__ == '__main__':
    app.run()
