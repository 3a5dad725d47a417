Reanudación del período de sesiones
Declaro reanudado el período de sesiones del Parlamento Europeo.
Señor Presidente, quisiera dar las gracias al ponente por su excelente trabajo.
El Consejo no ha respondido todavía a nuestra pregunta.
Votaremos el informe mañana a mediodía.
La Comisión presentará una nueva propuesta antes del verano.
Este debate es muy importante para los ciudadanos de Europa.
Mi grupo apoya las enmiendas presentadas por la comisión de medio ambiente.
No podemos aceptar esta situación.
Se cierra el debate.
La votación tendrá lugar el jueves.
Señora Comisaria, le agradezco su respuesta.
Los Estados miembros deben cumplir sus compromisos.
El acta de la sesión de ayer ha sido distribuida.
¿Hay alguna observación?
El acta queda aprobada.
Quisiera plantear una cuestión de orden.
La seguridad alimentaria es una prioridad para esta Cámara.
Necesitamos más transparencia en el proceso legislativo.
El presupuesto para el próximo año es insuficiente.
Agradezco a todos los diputados su participación en este debate.
La pesca es un sector esencial para muchas regiones costeras.
Pido a la Comisión que actúe con rapidez.
El informe contiene varias recomendaciones útiles.
Esta propuesta no respeta el principio de subsidiariedad.
El Parlamento ha aprobado la resolución por amplia mayoría.
Debemos proteger los derechos de los trabajadores.
La ampliación de la Unión plantea nuevos desafíos.
Señor Presidente, mi intervención será breve.
El medio ambiente no conoce fronteras.
Quiero felicitar a la Presidencia por los resultados obtenidos.
La situación en la región sigue siendo muy preocupante.
Hemos recibido numerosas peticiones de los ciudadanos.
La Comisión comparte la preocupación del Parlamento.
Este texto es el resultado de un largo compromiso.
Espero que el Consejo tenga en cuenta nuestra posición.
La sesión queda suspendida durante unos minutos.
El transporte ferroviario debe ser más competitivo.
Las pequeñas y medianas empresas crean la mayoría de los empleos.
Gracias, señor Presidente.
