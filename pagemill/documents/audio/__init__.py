"""Recordings: recognise, decode, cut and store audio, and write transcripts as subtitles.

The media layer of audio transcription jobs, with no knowledge of jobs or engines. A worker streams:
``for piece, samples in iter_pieces(iter_pcm(path, max_s), max_piece_s=...)`` then ``encode_piece(samples)``
per page, holding about a minute of audio whatever the recording's length. The sandboxed probe only calls
:func:`probe_audio` (the header and the first packets).

- :mod:`~pagemill.documents.audio.formats` recognises a container from its first bytes (:func:`sniff_audio`).
- :mod:`~pagemill.documents.audio.decode` checks a recording's header (:func:`probe_audio`) and decodes it to
  16 kHz mono float32 (:func:`decode_pcm`, :func:`iter_pcm`), bounded by a maximum duration whatever the
  header claims.
- :mod:`~pagemill.documents.audio.split` cuts the samples into pieces of at most ``max_piece_s`` at silences
  (:func:`split_pieces`, or :func:`iter_pieces` on a stream); each piece is one page of the job.
- :mod:`~pagemill.documents.audio.pieces` stores a piece as a compact blob and reads it back, and makes the
  WAV an HTTP transcription endpoint wants.
- :mod:`~pagemill.documents.audio.subtitles` writes timed segments as SRT, WebVTT or markdown.
"""
